// Test stand-in for Authelia 4.39's OpenID Connect provider, built on
// oidc-provider (OpenID Certified). Users log in with a form that binds to the
// LDAP stand-in, as Authelia does with its LLDAP backend. Started by start.sh;
// what it mirrors and where it deviates: ../README.md.
//
//   node server.mjs --dir DIR --port PORT --issuer URL --clients FILE --ldap-url URL
//                   [--cert FILE --key FILE] [--ldap-ca FILE] [--keys FILE]
//                   [--fixture FILE] [--ldap-bind-dn DN] [--ldap-bind-password-file FILE]
//
// Listens on 127.0.0.1 only.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import Provider, { errors } from 'oidc-provider';
import { Client as LdapClient, InvalidCredentialsError, escapeFilter } from 'ldapts';

const here = path.dirname(fileURLToPath(import.meta.url));

function fail(message) {
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const known = new Set([
    'dir', 'port', 'issuer', 'clients', 'ldap-url', 'cert', 'key', 'ldap-ca', 'keys',
    'fixture', 'ldap-bind-dn', 'ldap-bind-password-file',
  ]);
  const out = {};
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]?.replace(/^--/, '');
    if (!known.has(name) || argv[i + 1] === undefined) fail(`bad argument: ${argv[i]}`);
    out[name] = argv[i + 1];
  }
  for (const required of ['dir', 'port', 'issuer', 'clients', 'ldap-url']) {
    if (!out[required]) fail(`--${required} is required`);
  }
  if (Boolean(out.cert) !== Boolean(out.key)) fail('--cert and --key go together');
  return out;
}

const args = parseArgs(process.argv.slice(2));
const readJson = (file, what) => {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    return fail(`cannot read ${what} ${file}: ${err.message}`);
  }
};

const fixture = readJson(args.fixture ?? path.join(here, '..', 'directory.json'), 'fixture');
const baseDn = fixture.base_dn;
const peopleDn = `ou=people,${baseDn}`;
const groupsDn = `ou=groups,${baseDn}`;
const bindDn = args['ldap-bind-dn'] ?? `uid=admin,${peopleDn}`;
const bindPassword = args['ldap-bind-password-file']
  ? fs.readFileSync(args['ldap-bind-password-file'], 'utf8').replace(/\r?\n$/, '')
  : fixture.users.find((u) => u.uid === 'admin')?.password;
if (!bindPassword) fail('no LDAP bind password (fixture without admin, and no --ldap-bind-password-file)');
const ldapCa = args['ldap-ca'] ? fs.readFileSync(args['ldap-ca']) : undefined;

const issuer = args.issuer.replace(/\/$/, '');
const issuerUrl = URL.parse(issuer);
if (!issuerUrl || !['http:', 'https:'].includes(issuerUrl.protocol)) fail(`not an http(s) issuer: ${args.issuer}`);

// ---------------------------------------------------------------- logging

const logStream = fs.createWriteStream(path.join(args.dir, 'oidc.log'), { flags: 'a' });
function log(line) {
  logStream.write(`${new Date().toISOString()} ${line}\n`);
}

// ---------------------------------------------------------------- clients

const clientsFile = readJson(args.clients, 'clients file');
if (!Array.isArray(clientsFile) || clientsFile.length === 0) fail(`${args.clients}: expected a non-empty JSON list of clients`);
// Authelia's confidential clients: code flow only, PKCE S256 (enforced below
// for every client), client_secret_basic at the token endpoint.
const clients = clientsFile.map((c) => {
  if (!c.client_id || !c.client_secret || !Array.isArray(c.redirect_uris)) {
    fail(`${args.clients}: every client needs client_id, client_secret and redirect_uris`);
  }
  return {
    client_id: c.client_id,
    client_secret: c.client_secret,
    redirect_uris: c.redirect_uris,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    introspection_endpoint_auth_method: 'client_secret_basic',
    revocation_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
    scope: 'openid profile email groups offline_access',
  };
});

// ---------------------------------------------------------------- signing keys

function generateJwks() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { keys: [{ ...jwk, kid: crypto.randomBytes(12).toString('base64url'), use: 'sig', alg: 'RS256' }] };
}

let jwks;
if (args.keys && fs.existsSync(args.keys)) {
  jwks = readJson(args.keys, 'keys file');
} else {
  jwks = generateJwks();
  if (args.keys) fs.writeFileSync(args.keys, JSON.stringify(jwks), { mode: 0o600 });
}

// ---------------------------------------------------------------- LDAP, like Authelia's lldap backend

// Authelia's defaults for `implementation: lldap` (4.39):
//   users_filter  (&(|({username_attribute}={input})({mail_attribute}={input}))(objectClass=person))
//   groups_filter (&(member={dn})(objectClass=groupOfUniqueNames))
//   username uid, display_name cn, mail mail, group_name cn
// ldapts speaks TLS whenever tlsOptions are given, so only for ldaps:// URLs.
const ldapTls = args['ldap-url'].startsWith('ldaps://')
  ? { tlsOptions: { minVersion: 'TLSv1.2', ...(ldapCa ? { ca: [ldapCa] } : {}) } }
  : {};
function ldapClient() {
  return new LdapClient({ url: args['ldap-url'], timeout: 5000, connectTimeout: 5000, ...ldapTls });
}

const first = (value) => (Array.isArray(value) ? value[0] : value);

// Returns the user's profile when username/password are right, null when not.
async function checkPasswordAndLoadProfile(input, password) {
  if (!input || !password) return null;
  const service = ldapClient();
  try {
    await service.bind(bindDn, bindPassword);
    const { searchEntries: users } = await service.search(peopleDn, {
      scope: 'sub',
      filter: escapeFilter`(&(|(uid=${input})(mail=${input}))(objectClass=person))`,
      attributes: ['uid', 'cn', 'mail', 'entryUUID'],
    });
    if (users.length !== 1) return null;
    const user = users[0];

    const asUser = ldapClient();
    try {
      await asUser.bind(user.dn, password);
    } catch (err) {
      if (err instanceof InvalidCredentialsError) return null;
      throw err;
    } finally {
      await asUser.unbind().catch(() => {});
    }

    const { searchEntries: groups } = await service.search(groupsDn, {
      scope: 'sub',
      filter: escapeFilter`(&(member=${user.dn})(objectClass=groupOfUniqueNames))`,
      attributes: ['cn'],
    });
    const mail = first(user.mail);
    return {
      sub: String(first(user.entryUUID)),
      preferred_username: String(first(user.uid)),
      name: String(first(user.cn) ?? first(user.uid)),
      email: mail ? String(mail) : undefined,
      email_verified: mail ? true : undefined,
      groups: groups.map((g) => String(first(g.cn))).sort(),
    };
  } finally {
    await service.unbind().catch(() => {});
  }
}

// The claims read from LDAP at each user's latest login, by sub (Authelia keeps
// the subject identifier opaque and stable; here it is the LDAP entryUUID).
const profiles = new Map();

// ---------------------------------------------------------------- the provider

const provider = new Provider(issuer, {
  clients,
  jwks,
  findAccount: async (_ctx, sub) => {
    const profile = profiles.get(sub);
    if (!profile) return undefined;
    return { accountId: sub, claims: async () => ({ ...profile }) };
  },
  claims: {
    // auth_time and amr ride in the id_token (the account's claims never hold them).
    openid: ['sub', 'auth_time', 'amr'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  scopes: ['openid', 'profile', 'email', 'groups', 'offline_access'],
  responseTypes: ['code'],
  // Authelia's discovery lists these; the clients above are registered for
  // client_secret_basic only, so any other method is refused for them.
  clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'client_secret_jwt', 'private_key_jwt', 'none'],
  pkce: { required: () => true },
  // Authelia's claims policy default since 4.39: the id_token carries no
  // profile, email or groups claims; they come from the userinfo endpoint.
  conformIdTokenClaims: true,
  routes: {
    authorization: '/api/oidc/authorization',
    token: '/api/oidc/token',
    userinfo: '/api/oidc/userinfo',
    jwks: '/jwks.json',
    introspection: '/api/oidc/introspection',
    revocation: '/api/oidc/revocation',
    pushed_authorization_request: '/api/oidc/pushed-authorization-request',
  },
  features: {
    devInteractions: { enabled: false },
    introspection: { enabled: true },
    revocation: { enabled: true },
    // Authelia 4.39 has no end_session_endpoint.
    rpInitiatedLogout: { enabled: false },
    pushedAuthorizationRequests: { enabled: true },
    dPoP: { enabled: false },
  },
  // Authelia's default lifespans.
  ttl: {
    AuthorizationCode: 60,
    AccessToken: 3600,
    IdToken: 3600,
    RefreshToken: 5400,
    Interaction: 3600,
    Session: 3600,
  },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  interactions: { url: async (_ctx, interaction) => `/interaction/${interaction.uid}` },
  clientBasedCORS: () => false,
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = page('Error', `<h1>Error</h1>${Object.entries(out)
      .map(([k, v]) => `<p><strong>${escapeHtml(k)}</strong>: ${escapeHtml(v)}</p>`).join('')}`);
  },
});
// TLS terminated in front of a plain-HTTP stand-in: trust X-Forwarded-Proto so
// that cookies and URLs match the https issuer.
if (!args.cert && issuerUrl.protocol === 'https:') provider.proxy = true;

provider.on('server_error', (_ctx, err) => log(`server_error ${err.stack ?? err}`));
provider.on('grant.error', (_ctx, err) => log(`grant.error ${err.name}: ${err.error_description ?? err.message}`));
provider.on('authorization.error', (_ctx, err) => log(`authorization.error ${err.name}: ${err.error_description ?? err.message}`));

// ---------------------------------------------------------------- the login form

function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(title)}</title>
</head>
<body>
${body}
</body>
</html>
`;
}

function loginPage(uid, { username = '', error } = {}) {
  return page('Sign in', `<h1>Sign in</h1>
${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>\n` : ''}<form method="post" action="/interaction/${escapeHtml(uid)}/login">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required value="${escapeHtml(username)}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>`);
}

const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'none'; base-uri 'none'; frame-ancestors 'none'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

function sendHtml(res, status, html) {
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', ...SECURITY_HEADERS });
  res.end(html);
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 16384) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

// Authelia's consent_mode "implicit": the requested scopes are granted without
// asking, but through the provider's consent prompt like any other grant.
async function grantImplicitConsent(req, res, details) {
  const { prompt, params, session, grantId } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const missing = prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const savedGrantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId: savedGrantId } }, { mergeWithLastSubmission: true });
}

async function handleInteraction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    sendHtml(res, 400, page('Error', '<h1>Error</h1><p>This sign-in request does not belong to this browser.</p>'));
    return;
  }
  if (req.method === 'GET' && !action) {
    if (details.prompt.name === 'login') {
      sendHtml(res, 200, loginPage(uid));
    } else if (details.prompt.name === 'consent') {
      await grantImplicitConsent(req, res, details);
    } else {
      sendHtml(res, 400, page('Error', `<h1>Error</h1><p>Unsupported prompt ${escapeHtml(details.prompt.name)}.</p>`));
    }
    return;
  }
  if (req.method === 'POST' && action === 'login' && details.prompt.name === 'login') {
    const form = await readForm(req);
    const username = (form.get('username') ?? '').trim();
    let profile;
    try {
      profile = await checkPasswordAndLoadProfile(username, form.get('password') ?? '');
    } catch (err) {
      log(`login error user=${JSON.stringify(username)} ldap: ${err.message}`);
      sendHtml(res, 503, loginPage(uid, { username, error: 'The directory is not reachable. Try again later.' }));
      return;
    }
    if (!profile) {
      log(`login failed user=${JSON.stringify(username)}`);
      sendHtml(res, 200, loginPage(uid, { username, error: 'Incorrect username or password.' }));
      return;
    }
    profiles.set(profile.sub, profile);
    log(`login ok user=${JSON.stringify(profile.preferred_username)} sub=${profile.sub} groups=${profile.groups.join(',')}`);
    await provider.interactionFinished(req, res, {
      login: { accountId: profile.sub, amr: ['pwd'], remember: true },
    }, { mergeWithLastSubmission: false });
    return;
  }
  res.writeHead(405, { Allow: 'GET, POST', ...SECURITY_HEADERS });
  res.end();
}

// ---------------------------------------------------------------- the server

const providerCallback = provider.callback();
const INTERACTION = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login))?$/;
const CLIENT_AUTH_PATHS = new Set(['/api/oidc/token', '/api/oidc/introspection', '/api/oidc/revocation']);

// oidc-provider accepts client_secret_post from a client registered for
// client_secret_basic (it treats the two alike); Authelia refuses it. The body
// is read here, and handed on as req.body, which oidc-provider then uses.
async function refusesClientSecretPost(req, res) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 56 * 1024) {
      res.writeHead(413, SECURITY_HEADERS);
      res.end();
      return true;
    }
    chunks.push(chunk);
  }
  const raw = Buffer.concat(chunks);
  if (/^application\/x-www-form-urlencoded/i.test(req.headers['content-type'] ?? '')
      && new URLSearchParams(raw.toString('utf8')).has('client_secret')) {
    res.writeHead(401, { 'Content-Type': 'application/json; charset=utf-8', ...SECURITY_HEADERS });
    res.end(JSON.stringify({
      error: 'invalid_client',
      error_description: "Client authentication failed (e.g., unknown client, no client authentication included, or unsupported authentication method). The request was determined to be using 'token_endpoint_auth_method' method 'client_secret_post', however the OAuth 2.0 client registration does not allow this method.",
    }));
    return true;
  }
  req.body = raw;
  return false;
}

async function handle(req, res) {
  const started = process.hrtime.bigint();
  const pathOnly = (req.url ?? '/').split('?')[0];
  // Request lines only: no query strings, bodies or headers (no secrets).
  res.on('finish', () => {
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    log(`${req.method} ${pathOnly} ${res.statusCode} ${ms.toFixed(1)}ms`);
  });
  const match = INTERACTION.exec(pathOnly);
  try {
    if (!match) {
      if (req.method === 'POST' && CLIENT_AUTH_PATHS.has(pathOnly) && await refusesClientSecretPost(req, res)) return;
      await providerCallback(req, res);
      return;
    }
    await handleInteraction(req, res, match[1], match[2]);
  } catch (err) {
    if (err instanceof errors.SessionNotFound) {
      sendHtml(res, 400, page('Error', '<h1>Error</h1><p>This sign-in request has expired or was started in another browser.</p>'));
      return;
    }
    log(`request error ${err.stack ?? err}`);
    if (!res.headersSent) sendHtml(res, 500, page('Error', '<h1>Error</h1><p>Internal error.</p>'));
  }
}

const server = args.cert
  ? https.createServer({ cert: fs.readFileSync(args.cert), key: fs.readFileSync(args.key) }, handle)
  : http.createServer(handle);
const HOST = '127.0.0.1';
server.on('error', (err) => fail(`cannot listen on ${HOST}:${args.port}: ${err.message}`));
server.listen(Number(args.port), HOST, () => {
  log(`listening on ${args.cert ? 'https' : 'http'}://${HOST}:${args.port} issuer=${issuer} kid=${jwks.keys.map((k) => k.kid).join(',')}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections?.();
    logStream.end(() => process.exit(0));
  });
}
