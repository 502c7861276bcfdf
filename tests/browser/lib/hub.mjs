// What the browser tests share: where the stack is (the STACK_* variables that
// scripts/lib/stack.sh exports), the fixture's people, Debian's Chromium, logging in
// through the provider, submitting forms, and the API with the bootstrap admin token.

import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run these tests through tests/suites/browser.sh, ` +
      'or source scripts/lib/stack.sh, call stack_up and export its STACK_* variables');
  }
  return value;
}

/** The running stack (scripts/lib/stack.sh). */
export const stack = {
  dir: required('STACK_DIR'),
  hub: required('STACK_HUB_URL'),
  issuer: required('STACK_ISSUER'),
  tls: process.env.STACK_TLS === '1',
  adminToken: readFileSync(required('STACK_TOKEN_FILE'), 'utf8').trim(),
};

export const SESSION_COOKIE = '__Host-state-hub-session';

const fixture = JSON.parse(readFileSync(join(REPO, 'tests/standins/directory.json'), 'utf8'));

/** The fixture password of `uid` (tests/standins/directory.json). */
export function password(uid) {
  const user = fixture.users.find((u) => u.uid === uid);
  assert.ok(user, `no user ${uid} in the fixture`);
  return user.password;
}

/** Debian's Chromium; playwright-core never downloads a browser of its own. */
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * A fresh browser context (own cookies) and page for one person. Console errors and page
 * errors are collected; `cspViolations()` lists the console messages about the CSP.
 * The https issuer is signed by the stack's throwaway CA, which this browser does not know.
 */
export async function newPerson(browser) {
  const context = await browser.newContext({ ignoreHTTPSErrors: stack.tls });
  context.setDefaultTimeout(15_000);
  context.setDefaultNavigationTimeout(15_000);
  const page = await context.newPage();
  const consoleErrors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') {
      consoleErrors.push(`${msg.type()}: ${msg.text()} (${msg.location().url || page.url()})`);
    }
  });
  page.on('pageerror', (err) => consoleErrors.push(`pageerror: ${err.message}`));
  return {
    context,
    page,
    consoleErrors,
    cspViolations: () => consoleErrors.filter((m) => /Content Security Policy|Content-Security-Policy/i.test(m)),
    async sessionCookie() {
      return (await context.cookies(stack.hub)).find((c) => c.name === SESSION_COOKIE);
    },
    close: () => context.close(),
  };
}

/** `path` on the hub, as an absolute URL. */
export function hubUrl(path) {
  return new URL(path, stack.hub).href;
}

/** True when `url` is on the hub (any path). */
export function onHub(url) {
  return new URL(url).origin === new URL(stack.hub).origin;
}

/**
 * Logs `uid` in the way a person does: the hub's login page, the "single sign-on" link, the
 * provider's form. Resolves with the hub's answer to /auth/callback once the browser is back
 * on the hub (the dashboard, or the page that refused the login).
 */
export async function ssoLogin(page, uid, { next = '/' } = {}) {
  await page.goto(hubUrl(`/auth/login?next=${encodeURIComponent(next)}`));
  await Promise.all([
    page.waitForURL((u) => u.href.startsWith(stack.issuer)),
    page.locator('#sso-login').click(),
  ]);
  await page.locator('input[name="username"]').fill(uid);
  await page.locator('input[name="password"]').fill(password(uid));
  const callback = page.waitForResponse((r) => r.url().startsWith(hubUrl('/auth/callback')));
  await Promise.all([
    page.waitForURL((u) => onHub(u.href), { waitUntil: 'load' }),
    page.locator('button[type="submit"]').click(),
  ]);
  const answer = await callback;
  await page.waitForLoadState('load');
  return answer;
}

/**
 * Clicks `button` (which sends a form) and waits for the page that results. Returns
 * `{ first, last }`: the response to the form's request itself (e.g. 303 or 403) and the
 * response of the page finally shown.
 */
export async function submit(page, button) {
  const [last] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), button.click()]);
  let request = last.request();
  while (request.redirectedFrom()) request = request.redirectedFrom();
  return { first: await request.response(), last };
}

/** The visible text of the page's <main>, whitespace collapsed. */
export async function mainText(page) {
  return (await page.locator('main').innerText()).replace(/\s+/g, ' ');
}

/** The API with the bootstrap admin token: resolves with `{ status, body }`. */
export async function api(method, path, body) {
  const res = await fetch(hubUrl(path), {
    method,
    headers: {
      authorization: `Bearer ${stack.adminToken}`,
      accept: 'application/json',
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text for the assertion message
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** Every decision (newest first), through the API. */
export async function allDecisions() {
  const items = [];
  let after = '';
  for (let i = 0; i < 50; i++) {
    const { status, body } = await api('GET', `/api/v1/decisions?limit=500${after ? `&after=${encodeURIComponent(after)}` : ''}`);
    assert.equal(status, 200, `GET /api/v1/decisions: ${JSON.stringify(body)}`);
    items.push(...body.items);
    if (!body.next) break;
    after = body.next;
  }
  return items;
}

/**
 * Waits until GET `path` answers something other than 404 in this person's session, for at
 * most `seconds`. The decisions pages are being built alongside these tests: the failure
 * says plainly that the page is missing rather than timing out on a selector.
 */
export async function requirePage(person, path, seconds = 5) {
  const deadline = Date.now() + seconds * 1000;
  let status = 0;
  while (Date.now() < deadline) {
    status = (await person.context.request.get(hubUrl(path), { maxRedirects: 0 })).status();
    if (status !== 404) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.fail(`GET ${path} answered ${status} for ${seconds} s: that page is not in this build of the state hub`);
}

/** Runs a stack.sh function on this stack, e.g. `stackCommand('stack_stop_oidc')`. */
export function stackCommand(fn) {
  try {
    execFileSync('bash', ['-c', `set -euo pipefail; source scripts/lib/stack.sh; ${fn} "$1" 2>&1`, 'stack', stack.dir], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 30_000,
    });
  } catch (err) {
    throw new Error(`${fn} failed: ${err.message}\n${err.stdout ?? ''}`);
  }
}

/** A title no earlier run used. */
export function unique(prefix) {
  return `${prefix} ${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}
