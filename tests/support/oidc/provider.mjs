// A real, certified OpenID provider (panva/oidc-provider 8.x) for ordersync's sign-in tests.
//
// Why the real thing and not a fake: the hub's OpenID Connect sign-in (Authlib + joserfc) must meet a
// provider that enforces what real ones do: PKCE S256, exact redirect URIs, client authentication,
// signed ID tokens, one-time codes. A fake would only agree with our own reading of the specs.
//
// Started by tests/support/oidc.py:   node provider.mjs <config.json>
// (or with the JSON itself in OIDC_PROVIDER_CONFIG). The configuration:
//   { "port": 43123,
//     "clients": [{ "client_id", "client_secret", "redirect_uris", "post_logout_redirect_uris",
//                   "token_endpoint_auth_method": "client_secret_basic" | "client_secret_post" | "none", ... }],
//     "accounts": { "<login>": { "sub", "email", "email_verified", "name", "roles": [...],
//                                "password"?: "<checked when present; otherwise any password is accepted>" } } }
// It serves http://127.0.0.1:<port> (issuer without a trailing slash) and prints one line
// "oidc-provider listening on <issuer>" when it accepts connections.
//
// Sign-in is this file's own small login page (not oidc-provider's devInteractions, which accept any
// password and load fonts from the internet): form#login-form with input[name=login],
// input[name=password] and button#submit[type=submit]; a#cancel ends the sign-in with access_denied.
// Consent is never asked: loadExistingGrant grants the client whatever OpenID scopes and claims it
// requests, as a company's provider does for its own first-party application.

import { generateKeyPairSync, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const HOST = '127.0.0.1';

function loadConfig() {
  const path = process.argv[2];
  const text = path ? readFileSync(path, 'utf8') : process.env.OIDC_PROVIDER_CONFIG;
  if (!text) {
    throw new Error('usage: node provider.mjs <config.json> (or OIDC_PROVIDER_CONFIG=<json>)');
  }
  const config = JSON.parse(text);
  const port = Number(config.port ?? process.env.PORT);
  if (!Number.isInteger(port) || port <= 0) {
    throw new Error('the configuration needs a "port"');
  }
  return { port, clients: config.clients ?? [], accounts: config.accounts ?? {} };
}

const { port, clients, accounts } = loadConfig();
const issuer = `http://${HOST}:${port}`;

// accounts are looked up by login (the form) and by sub (tokens, userinfo)
const bySub = new Map();
for (const [login, account] of Object.entries(accounts)) {
  if (!account.sub) {
    throw new Error(`account ${login} needs a "sub"`);
  }
  bySub.set(String(account.sub), account);
}

function releasedClaims(account) {
  const { password, ...claims } = account; // eslint-disable-line no-unused-vars
  return { ...claims, sub: String(account.sub) };
}

function passwordMatches(account, given) {
  if (typeof given !== 'string' || given.length === 0) {
    return false;
  }
  if (account.password === undefined) {
    return true; // the account set no password: any one will do (devInteractions' behaviour)
  }
  const want = Buffer.from(String(account.password));
  const got = Buffer.from(given);
  return want.length === got.length && timingSafeEqual(want, got);
}

// one RSA signing key per run: ID tokens are RS256, the hub checks them against /jwks
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };

function escapeHtml(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} - test identity provider</title>
</head>
<body>
<main>
<h1>${escapeHtml(title)}</h1>
${body}
</main>
</body>
</html>`;
}

async function loadExistingGrant(ctx) {
  // No consent screen: grant the OpenID scopes and claims this request asks for.
  const { oidc } = ctx;
  const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
  let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
  if (!grant) {
    grant = new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
  }
  grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
  const claims = [...oidc.requestParamClaims];
  if (claims.length > 0) {
    grant.addOIDCClaims(claims);
  }
  await grant.save();
  return grant;
}

const configuration = {
  clients,
  clientDefaults: {
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  },
  responseTypes: ['code'],
  pkce: { methods: ['S256'], required: () => true },
  scopes: ['openid', 'email', 'profile', 'roles'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username', 'locale', 'zoneinfo', 'updated_at'],
    roles: ['roles'],
  },
  // the relying party reads every granted claim (roles included) from the ID token, not only from userinfo
  conformIdTokenClaims: false,
  async findAccount(ctx, sub) {
    const account = bySub.get(String(sub));
    if (!account) {
      return undefined;
    }
    return { accountId: String(account.sub), async claims() { return releasedClaims(account); } };
  },
  loadExistingGrant,
  ttl: { // seconds; set so that oidc-provider does not log a notice for each default it falls back to
    AccessToken: 3600, AuthorizationCode: 600, IdToken: 3600, Interaction: 3600, Session: 86400, Grant: 86400,
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  jwks: { keys: [signingKey] },
  cookies: {
    keys: [randomBytes(32).toString('hex')],
    // prefixed so that they never collide with the hub's cookies: cookies do not tell ports apart,
    // and the hub under test also lives on 127.0.0.1
    names: { session: 'op_session', interaction: 'op_interaction', resume: 'op_interaction_resume' },
    // the default for the session cookie is SameSite=None, which browsers drop unless Secure (https)
    long: { httpOnly: true, sameSite: 'lax', signed: true },
    short: { httpOnly: true, sameSite: 'lax', signed: true },
  },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.type = 'html';
        ctx.body = page('Sign out', `${form}
<p>Do you want to sign out of the test identity provider?</p>
<button id="submit" type="submit" form="op.logoutForm" value="yes" name="logout">Sign out</button>
<button id="stay" type="submit" form="op.logoutForm">Stay signed in</button>`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.type = 'html';
        ctx.body = page('Signed out', '<p id="signed-out">You are signed out of the test identity provider.</p>');
      },
    },
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    const rows = Object.entries(out).map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`);
    ctx.body = page('Sign-in error', `<dl id="error">${rows.join('')}</dl>`);
  },
};

const provider = new Provider(issuer, configuration);
provider.on('server_error', (ctx, err) => console.error('server_error', err));

// ------------------------------------------------------------------------------ the login interaction

function loginPage(uid, params, clientName, { login = '', error = '' } = {}) {
  const value = login || params.login_hint || '';
  const alert = error ? `<p id="error" role="alert">${escapeHtml(error)}</p>\n` : '';
  return page('Sign in', `<p>to continue to ${escapeHtml(clientName)}</p>
${alert}<form id="login-form" method="post" action="/interaction/${escapeHtml(uid)}/login" autocomplete="off">
<p><label for="login">Login</label>
<input id="login" name="login" type="text" required autocapitalize="none" value="${escapeHtml(value)}"></p>
<p><label for="password">Password</label>
<input id="password" name="password" type="password" required></p>
<p><button id="submit" type="submit">Sign in</button></p>
</form>
<p><a id="cancel" href="/interaction/${escapeHtml(uid)}/abort">Cancel</a></p>`);
}

function send(res, status, html) {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    // no form-action: browsers apply it to the redirects after the POST too, and the last one leaves
    // for the relying party's callback on another origin
    'content-security-policy': "default-src 'none'",
  });
  res.end(html);
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) {
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    send(res, 400, page('Sign-in error', '<p id="error">This sign-in page is out of date; start again.</p>'));
    return;
  }
  const { prompt, params } = details;
  const client = await provider.Client.find(params.client_id);
  const clientName = client?.clientName || params.client_id;

  if (action === 'abort') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
    return;
  }
  if (prompt.name === 'consent') { // not reached with loadExistingGrant; kept so no click is ever needed
    const grant = details.grantId ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } },
      { mergeWithLastSubmission: true });
    return;
  }
  if (prompt.name !== 'login') {
    send(res, 501, page('Sign-in error', `<p id="error">Unsupported prompt ${escapeHtml(prompt.name)}.</p>`));
    return;
  }
  if (action !== 'login' || req.method !== 'POST') {
    send(res, 200, loginPage(uid, params, clientName));
    return;
  }
  const form = await readForm(req);
  const login = form.get('login') ?? '';
  const account = Object.hasOwn(accounts, login) ? accounts[login] : undefined;
  if (!account || !passwordMatches(account, form.get('password'))) {
    send(res, 200, loginPage(uid, params, clientName, { login, error: 'Wrong login or password.' }));
    return;
  }
  await provider.interactionFinished(req, res, { login: { accountId: String(account.sub) } },
    { mergeWithLastSubmission: false });
}

const oidc = provider.callback();
const INTERACTION = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|abort))?$/;

const server = createServer((req, res) => {
  const match = INTERACTION.exec(new URL(req.url, issuer).pathname);
  if (!match) {
    oidc(req, res);
    return;
  }
  interaction(req, res, match[1], match[2]).catch((err) => {
    // SessionNotFound (no interaction cookie, or it expired) and the like: a page, not a crash
    console.error('interaction error', err);
    if (!res.headersSent) {
      send(res, 400, page('Sign-in error', `<p id="error">${escapeHtml(err.error_description || err.message)}</p>`));
    }
  });
});

server.on('error', (err) => {
  console.error(`oidc-provider cannot listen on ${issuer}: ${err.code || err.message}`);
  process.exit(err.code === 'EADDRINUSE' ? 98 : 1);
});
server.listen(port, HOST, () => {
  console.log(`oidc-provider listening on ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
