// The state hub in a real browser, against the LDAP and OIDC stand-ins: logging in through
// the provider, the two-person rule on decisions, CSRF, refused and ended sessions, the CSP,
// and break-glass while the provider is down. Run by tests/suites/browser.sh, which starts
// the stack (scripts/lib/stack.sh). The tests run in order: break-glass stops the provider,
// so it comes last.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  stack, SESSION_COOKIE, password, launchBrowser, newPerson, hubUrl, ssoLogin, submit,
  mainText, api, allDecisions, requirePage, stackCommand, unique,
} from './lib/hub.mjs';

let browser;
const people = new Map();

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
});

/** `uid`'s browser, logged in through the provider once and kept for later tests. */
async function loggedIn(uid) {
  if (!people.has(uid)) {
    const person = await newPerson(browser);
    const answer = await ssoLogin(person.page, uid);
    assert.equal(answer.status(), 303, `${uid}'s login was not accepted: ${await mainText(person.page)}`);
    people.set(uid, person);
  }
  return people.get(uid);
}

function submitButton(form) {
  return form.locator('button[type="submit"], button:not([type]), input[type="submit"]').first();
}

/** Fills the propose form: title, context, and the options (a textarea, one per line, or one field each). */
async function fillProposal(form, { title, context, options }) {
  await form.locator('[name="title"]').fill(title);
  await form.locator('[name="context"]').fill(context);
  const fields = form.locator('[name="options"]');
  const n = await fields.count();
  assert.ok(n > 0, 'the propose form has no field named "options"');
  if (n === 1) {
    const tag = await fields.first().evaluate((e) => e.tagName.toLowerCase());
    assert.equal(tag, 'textarea', 'a single "options" field must be a textarea (one option per line)');
    await fields.first().fill(options.join('\n'));
  } else {
    for (let i = 0; i < n; i++) await fields.nth(i).fill(options[i] ?? '');
  }
}

/** Picks `choice` in the resolve form's "choice" field, whatever kind of field it is. */
async function pickChoice(form, choice) {
  const field = form.locator('[name="choice"]');
  assert.ok(await field.count() > 0, 'the resolve form has no field named "choice"');
  const kind = await field.first().evaluate((e) => `${e.tagName.toLowerCase()}:${e.type || ''}`);
  if (kind.startsWith('select')) await field.first().selectOption(choice);
  else if (kind.endsWith(':radio')) await form.locator(`[name="choice"][value="${choice}"]`).check();
  else await field.first().fill(choice);
}

async function decisionByTitle(title) {
  return (await allDecisions()).find((d) => d.title === title);
}

async function breakGlass(page, uid) {
  await page.goto(hubUrl('/auth/break-glass'));
  await page.locator('input[name="username"]').fill(uid);
  await page.locator('input[name="password"]').fill(password(uid));
  return submit(page, page.locator('main form button[type="submit"]'));
}

test('alice logs in through the provider and gets a __Host- session cookie: HttpOnly, Secure, SameSite=Lax', async () => {
  const alice = await newPerson(browser);
  const { page } = alice;
  await page.goto(hubUrl('/'));
  assert.equal(new URL(page.url()).pathname, '/auth/login', 'a visitor without a session is sent to the login page');

  await Promise.all([page.waitForURL((u) => u.href.startsWith(stack.issuer)), page.locator('#sso-login').click()]);
  assert.ok(await page.locator('input[name="password"]').isVisible(), 'the provider shows its login form');
  await page.locator('input[name="username"]').fill('alice');
  await page.locator('input[name="password"]').fill(password('alice'));
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(stack.hub), { waitUntil: 'load' }),
    page.locator('button[type="submit"]').click(),
  ]);

  assert.equal(new URL(page.url()).pathname, '/', 'back on the dashboard');
  assert.match(await page.locator('h1').first().innerText(), /Dashboard/);
  assert.match(await page.locator('header .who').innerText(), /\balice\b/);
  assert.match(await page.locator('header .who .roles').innerText(), /\badmin\b/);

  const cookie = await alice.sessionCookie();
  assert.ok(cookie, `no ${SESSION_COOKIE} cookie after login`);
  assert.equal(cookie.httpOnly, true, 'HttpOnly');
  assert.equal(cookie.secure, true, 'Secure');
  assert.equal(cookie.sameSite, 'Lax', 'SameSite');
  assert.equal(cookie.path, '/', '__Host- cookies have Path=/');
  assert.ok(cookie.value.length >= 32, 'the session id is long enough to be unguessable');
  const visible = await page.evaluate(() => document.cookie);
  assert.ok(!visible.includes(cookie.value), 'page scripts cannot read the session cookie');
  people.set('alice', alice);
});

test('the dashboard sends a CSP without inline script, and its live feed runs with no CSP violation', async () => {
  const alice = await loggedIn('alice');
  const { page } = alice;
  const response = await page.goto(hubUrl('/'));
  const csp = response.headers()['content-security-policy'] ?? '';
  assert.match(csp, /script-src 'self'/, `CSP: ${csp}`);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, `CSP: ${csp}`);
  assert.match(csp, /frame-ancestors 'none'/, `CSP: ${csp}`);

  const inline = await page.evaluate(() => ({
    scripts: document.querySelectorAll('script:not([src])').length,
    handlers: [...document.querySelectorAll('*')].flatMap((e) => [...e.attributes].filter((a) => a.name.startsWith('on')).map((a) => `${e.tagName}[${a.name}]`)),
  }));
  assert.equal(inline.scripts, 0, 'no inline <script>');
  assert.deepEqual(inline.handlers, [], 'no inline event handlers');

  await page.locator('[data-live-status]').filter({ hasText: 'live' }).waitFor({ timeout: 10_000 });
  const summary = unique('Browser test: live feed');
  const posted = await api('POST', '/api/v1/events', { event_type: 'note.added', summary, detail: { by: 'browser test' } });
  assert.equal(posted.status, 201, `posting an event: ${JSON.stringify(posted.body)}`);
  await page.locator('[data-live-events] li', { hasText: summary }).waitFor({ timeout: 10_000 })
    .catch(() => assert.fail(`the event "${summary}" did not appear in the live feed within 10 s (the page listens to the SSE stream /api/v1/events/stream)`));

  await page.goto(hubUrl('/account'));
  await page.goto(hubUrl('/'));
  await page.locator('[data-live-status]').filter({ hasText: 'live' }).waitFor({ timeout: 10_000 });
  assert.deepEqual(alice.cspViolations(), [], 'no CSP violation while browsing');

  // The control: inline script is really refused, and the refusal shows up where we listened.
  const ran = await page.evaluate(() => {
    const s = document.createElement('script');
    s.textContent = 'window.__inlineRan = true;';
    document.body.appendChild(s);
    return window.__inlineRan === true;
  });
  assert.equal(ran, false, 'an inline script was executed');
  await page.waitForTimeout(200);
  assert.ok(alice.cspViolations().length > 0, 'the refused inline script was not reported on the console');
});

test('bob proposes and escalates a decision; he cannot approve it himself; alice resolves it', async () => {
  const bob = await loggedIn('bob');
  await requirePage(bob, '/decisions');
  const title = unique('Browser test: which backup target');
  const options = ['Object storage', 'Second VPS'];

  await bob.page.goto(hubUrl('/decisions'));
  const propose = bob.page.locator('main form[method="post"][action="/decisions"]');
  await fillProposal(propose, { title, context: 'Nightly PostgreSQL backups must leave the host.', options });
  const proposed = await submit(bob.page, submitButton(propose));
  assert.ok(proposed.first.status() < 400, `proposing was refused (${proposed.first.status()}): ${await mainText(bob.page)}`);
  const created = await decisionByTitle(title);
  assert.ok(created, 'the proposed decision is not in the API');
  assert.equal(created.proposed_by, 'bob');
  assert.deepEqual(created.options, options);
  assert.equal(created.status, 'open');
  assert.equal(new URL(bob.page.url()).pathname, `/decisions/${created.id}`, 'proposing leads to the new decision\'s page');
  assert.match(await bob.page.locator('h1').innerText(), new RegExp(title));

  const escalate = bob.page.locator(`main form[action="/decisions/${created.id}/escalate"]`);
  await escalate.locator('[name="reason"]').fill('Costs money every month; needs a second pair of eyes.');
  const escalated = await submit(bob.page, submitButton(escalate));
  assert.ok(escalated.first.status() < 400, `escalating was refused: ${await mainText(bob.page)}`);
  const afterEscalation = (await api('GET', `/api/v1/decisions/${created.id}`)).body;
  assert.equal(afterEscalation.status, 'escalated');
  assert.equal(afterEscalation.escalated_by, 'bob');
  assert.match(await bob.page.locator('h1').innerText(), /escalated/i);

  // Bob may not approve his own escalation (the two-person rule): the page tells him so and
  // offers no resolve form, and the server refuses the form all the same.
  await bob.page.goto(hubUrl(`/decisions/${created.id}`));
  assert.match(await mainText(bob.page), /another person must approve it/i, 'the page explains the two-person rule');
  assert.equal(await bob.page.locator(`main form[action="/decisions/${created.id}/resolve"]`).count(), 0,
    'the proposer is offered the resolve form');
  const token = await bob.page.locator('input[name="csrf_token"]').first().inputValue();
  const forged = await bob.context.request.post(hubUrl(`/decisions/${created.id}/resolve`), {
    form: { csrf_token: token, version: String(afterEscalation.version), choice: options[0], rationale: 'I proposed it, so I approve it.' },
    maxRedirects: 0,
  });
  assert.equal(forged.status(), 403, 'POST /decisions/{id}/resolve by the proposer');
  assert.match(await forged.text(), /approved by someone else/i, 'the refusal names the two-person rule');
  assert.equal((await api('GET', `/api/v1/decisions/${created.id}`)).body.status, 'escalated', 'still escalated');

  const alice = await loggedIn('alice');
  await alice.page.goto(hubUrl(`/decisions/${created.id}`));
  const resolve = alice.page.locator(`main form[action="/decisions/${created.id}/resolve"]`);
  assert.equal(await resolve.count(), 1, 'alice (admin, not the proposer) is offered the resolve form');
  await pickChoice(resolve, options[1]);
  await resolve.locator('[name="rationale"]').fill('Keeps backups off the object store we do not run.');
  const resolved = await submit(alice.page, submitButton(resolve));
  assert.ok(resolved.first.status() < 400, `alice's approval was refused: ${await mainText(alice.page)}`);

  await alice.page.goto(hubUrl(`/decisions/${created.id}`));
  assert.match(await alice.page.locator('h1').innerText(), /resolved/i);
  assert.match(await alice.page.locator('#decision-facts').innerText(), new RegExp(`${options[1]}.*decided by alice`));
  const final = (await api('GET', `/api/v1/decisions/${created.id}`)).body;
  assert.equal(final.status, 'resolved');
  assert.equal(final.outcome?.choice, options[1]);
  assert.equal(final.outcome?.decided_by, 'alice');
});

test('a form sent without or with a wrong csrf_token gets the 403 security-token page and changes nothing', async () => {
  const bob = await loggedIn('bob');
  const { page } = bob;

  // The header's log-out form, with an altered token: refused, and bob stays logged in.
  await page.goto(hubUrl('/'));
  await page.evaluate(() => {
    const input = document.querySelector('header form[action="/auth/logout"] input[name="csrf_token"]');
    // Another first character: a token that differs, whatever it was.
    input.value = `${input.value[0] === 'A' ? 'B' : 'A'}${input.value.slice(1)}`;
  });
  const logout = await submit(page, page.locator('header form[action="/auth/logout"] button'));
  assert.equal(logout.first.status(), 403);
  assert.match(await mainText(page), /security token/i);
  assert.ok(await bob.sessionCookie(), 'the session cookie survives a refused log-out');
  await page.goto(hubUrl('/'));
  assert.equal(new URL(page.url()).pathname, '/', 'still logged in');

  // The propose form without its token: refused, and no decision was created.
  await requirePage(bob, '/decisions');
  await page.goto(hubUrl('/decisions'));
  const title = unique('Browser test: forged proposal');
  const propose = page.locator('main form[method="post"][action="/decisions"]');
  await fillProposal(propose, { title, context: 'Sent without the CSRF token.', options: ['yes', 'no'] });
  const removed = await propose.evaluate((form) => {
    const input = form.querySelector('input[name="csrf_token"]');
    input?.remove();
    return Boolean(input);
  });
  assert.ok(removed, 'the propose form carries a hidden csrf_token');
  const sent = await submit(page, submitButton(propose));
  assert.equal(sent.first.status(), 403);
  assert.match(await mainText(page), /security token/i);
  assert.equal(await decisionByTitle(title), undefined, 'a decision was created without a CSRF token');
});

test('dave, in no mapped group, logs in at the provider and gets the 403 "No access" page and no session', async () => {
  const dave = await newPerson(browser);
  try {
    const answer = await ssoLogin(dave.page, 'dave');
    assert.equal(answer.status(), 403);
    assert.match(await dave.page.locator('h1').innerText(), /No access/);
    assert.match(await mainText(dave.page), /dave/);
    assert.equal(await dave.sessionCookie(), undefined, 'a session cookie was set for dave');
    await dave.page.goto(hubUrl('/'));
    assert.equal(new URL(dave.page.url()).pathname, '/auth/login');
    const users = await api('GET', '/api/v1/users');
    assert.equal(users.status, 200, JSON.stringify(users.body));
    assert.ok(!users.body.items.some((u) => u.username === 'dave'), 'a user record was created for dave');
    const denied = await api('GET', '/api/v1/events?event_type=login.denied&limit=50');
    assert.equal(denied.status, 200, JSON.stringify(denied.body));
    assert.ok(denied.body.items.some((e) => e.summary.startsWith('dave was refused')),
      'the refusal is in the journal (login.denied)');
  } finally {
    await dave.close();
  }
});

test('after logging out, / sends carol to the login page and her old cookie is dead', async () => {
  const carol = await newPerson(browser);
  try {
    const answer = await ssoLogin(carol.page, 'carol');
    assert.equal(answer.status(), 303, await mainText(carol.page));
    assert.match(await carol.page.locator('header .who').innerText(), /\bcarol\b/);
    const cookie = await carol.sessionCookie();
    assert.ok(cookie);
    const replay = () => carol.context.request.get(hubUrl('/'), {
      headers: { cookie: `${SESSION_COOKIE}=${cookie.value}` },
      maxRedirects: 0,
    });
    assert.equal((await replay()).status(), 200, 'the cookie works before logging out');

    const out = await submit(carol.page, carol.page.locator('header form[action="/auth/logout"] button'));
    assert.equal(out.first.status(), 200);
    assert.match(await mainText(carol.page), /logged out/i);
    assert.equal(await carol.sessionCookie(), undefined, 'the session cookie is removed');

    await carol.page.goto(hubUrl('/'));
    assert.equal(new URL(carol.page.url()).pathname, '/auth/login');
    const replayed = await replay();
    assert.equal(replayed.status(), 303, 'the old cookie still opens the dashboard');
    assert.match(replayed.headers().location ?? '', /^\/auth\/login/);
  } finally {
    await carol.close();
  }
});

test('break-glass: only while the provider is down, only for hub_breakglass; erin gets a badge and a review decision', async () => {
  const erin = await newPerson(browser);
  const bob = await newPerson(browser);
  try {
    const whileUp = await breakGlass(erin.page, 'erin');
    assert.equal(whileUp.first.status(), 403, 'break-glass while single sign-on works');
    assert.match(await mainText(erin.page), /Single sign-on is working/i);
    assert.equal(await erin.sessionCookie(), undefined);

    stackCommand('stack_stop_oidc');
    try {
      const refused = await breakGlass(bob.page, 'bob');
      assert.equal(refused.first.status(), 403, `bob: ${await mainText(bob.page)}`);
      assert.match(await mainText(bob.page), /not in the break-glass group/i);
      assert.equal(await bob.sessionCookie(), undefined, 'bob got a session by break-glass');

      const login = await breakGlass(erin.page, 'erin');
      assert.equal(login.first.status(), 303, `erin's break-glass login: ${await mainText(erin.page)}`);
      assert.equal(new URL(erin.page.url()).pathname, '/');
      assert.match(await erin.page.locator('header .who').innerText(), /\berin\b/);
      assert.match(await erin.page.locator('header .badge').innerText(), /break-glass/);
      assert.ok(await erin.sessionCookie(), 'no session cookie after break-glass');

      const review = 'Review break-glass login of erin';
      assert.match(await erin.page.locator('#escalations').innerText(), new RegExp(review));
      const decision = await decisionByTitle(review);
      assert.ok(decision, `no decision "${review}"`);
      assert.equal(decision.status, 'escalated');
    } finally {
      stackCommand('stack_start_oidc');
    }
  } finally {
    await erin.close();
    await bob.close();
  }
});

test('when the provider is back (with a new signing key), single sign-on works again', async () => {
  const alice = await newPerson(browser);
  try {
    const answer = await ssoLogin(alice.page, 'alice');
    assert.equal(answer.status(), 303, await mainText(alice.page));
    assert.match(await alice.page.locator('header .who').innerText(), /\balice\b/);
  } finally {
    await alice.close();
  }
});
