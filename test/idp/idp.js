// A small, real OpenID Provider for Gatehouse's integration tests and demo,
// built on the npm package oidc-provider (version pinned in package-lock.json).
//
// Users:
//   alice / alice-password + TOTP  -> amr ["pwd","otp"], acr urn:gatehouse:mfa
//   bob   / bob-password           -> amr ["pwd"],       acr urn:gatehouse:pwd
//   dana  / dana-password (+ TOTP only when acr_values asks for
//           urn:gatehouse:mfa: the step-up user)
//
// It honours acr_values (asks for a fresh login when the session lacks the
// requested MFA acr), max_age and prompt=login (natively), and offers
// RP-initiated logout (end_session_endpoint). Its own plain HTML pages do the
// login and second-factor interactions (devInteractions off).
//
// Environment:
//   IDP_PORT                     port on 127.0.0.1 (required)
//   IDP_CLIENT_ID                default "gatehouse"
//   IDP_CLIENT_SECRET            default "gatehouse-secret"
//   IDP_REDIRECT_URIS            space- or comma-separated callback URLs (required)
//   IDP_POST_LOGOUT_REDIRECT_URIS space- or comma-separated URLs (optional)
//   IDP_ALICE_TOTP_SECRET        base32 TOTP secret (default JBSWY3DPEHPK3PXP)
//
// When it listens it prints "issuer=http://127.0.0.1:PORT" on stdout.
import http from 'node:http';
import crypto from 'node:crypto';
import { Provider, interactionPolicy } from 'oidc-provider';

const MFA_ACR = 'urn:gatehouse:mfa';
const PWD_ACR = 'urn:gatehouse:pwd';

const port = Number(process.env.IDP_PORT || '0');
if (!port) {
  console.error('IDP_PORT is required');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const list = (s) => (s || '').split(/[\s,]+/).filter(Boolean);
const redirectUris = list(process.env.IDP_REDIRECT_URIS);
if (redirectUris.length === 0) {
  console.error('IDP_REDIRECT_URIS is required');
  process.exit(2);
}

const users = {
  alice: {
    password: 'alice-password',
    totp: process.env.IDP_ALICE_TOTP_SECRET || 'JBSWY3DPEHPK3PXP',
    claims: {
      email: 'alice@example.com',
      email_verified: true,
      name: 'Alice Admin',
      preferred_username: 'alice',
      groups: ['staff', 'finance'],
      realm_access: { roles: ['admin', 'staff'] },
    },
  },
  dana: {
    password: 'dana-password',
    totp: process.env.IDP_ALICE_TOTP_SECRET || 'JBSWY3DPEHPK3PXP',
    totpOnDemand: true,
    claims: {
      email: 'dana@example.com',
      email_verified: true,
      name: 'Dana Developer',
      preferred_username: 'dana',
      groups: ['staff', 'engineering'],
      realm_access: { roles: ['staff'] },
    },
  },
  bob: {
    password: 'bob-password',
    totp: '',
    claims: {
      email: 'bob@example.com',
      email_verified: true,
      name: 'Bob Builder',
      preferred_username: 'bob',
      groups: ['staff'],
      realm_access: { roles: ['staff'] },
    },
  },
};

// RFC 4648 base32 decoding (no padding needed).
function base32Decode(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of s.replace(/=+$/, '').toUpperCase()) {
    const i = alphabet.indexOf(c);
    if (i < 0) throw new Error('bad base32');
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

// RFC 6238 TOTP, SHA-1, 6 digits, 30 s steps.
function totp(secret, step) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const mac = crypto.createHmac('sha1', base32Decode(secret)).update(msg).digest();
  const off = mac[mac.length - 1] & 0x0f;
  const bin = ((mac[off] & 0x7f) << 24) | (mac[off + 1] << 16) | (mac[off + 2] << 8) | mac[off + 3];
  return String(bin % 1000000).padStart(6, '0');
}

function totpOK(secret, code) {
  const now = Math.floor(Date.now() / 1000 / 30);
  for (const d of [-1, 0, 1]) {
    const want = totp(secret, now + d);
    if (code.length === want.length && crypto.timingSafeEqual(Buffer.from(code), Buffer.from(want))) {
      return true;
    }
  }
  return false;
}

// The login prompt also fires when the relying party asks (acr_values) for
// the MFA acr and the IdP session does not have it. oidc-provider treats
// acr_values as voluntary by default.
const { Check, base } = interactionPolicy;
const policy = base();
policy.get('login').checks.add(new Check('acr_values_mfa', 'multi-factor authentication requested', (ctx) => {
  const { oidc } = ctx;
  const wanted = list(oidc.params.acr_values);
  if (!wanted.includes(MFA_ACR)) return Check.NO_NEED_TO_PROMPT;
  if (oidc.result?.login) return Check.NO_NEED_TO_PROMPT; // just logged in: give what we have
  if (oidc.session.acr === MFA_ACR) return Check.NO_NEED_TO_PROMPT;
  return Check.REQUEST_PROMPT;
}));

const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
rsa.kid = crypto.randomBytes(8).toString('hex');
rsa.use = 'sig';
rsa.alg = 'RS256';

const clientId = process.env.IDP_CLIENT_ID || 'gatehouse';
const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: process.env.IDP_CLIENT_SECRET || 'gatehouse-secret',
    redirect_uris: redirectUris,
    post_logout_redirect_uris: list(process.env.IDP_POST_LOGOUT_REDIRECT_URIS),
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  jwks: { keys: [rsa] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  acrValues: [PWD_ACR, MFA_ACR],
  claims: {
    openid: ['sub', 'amr', 'acr', 'auth_time'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups', 'realm_access'],
  },
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        ctx.body = page('Sign out', `<h1>Sign out of the test IdP?</h1>${form}
<button type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>`);
      },
      postLogoutSuccessSource: async (ctx) => {
        ctx.body = page('Signed out', '<h1>You are signed out of the test IdP.</h1>');
      },
    },
  },
  interactions: {
    policy,
    url: (ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  findAccount: async (ctx, id) => {
    const u = users[id];
    if (!u) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...u.claims }) };
  },
  // First-party client: consent is implied, no consent page.
  loadExistingGrant: async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const g = await ctx.oidc.provider.Grant.find(grantId);
      if (g) return g;
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile groups');
    await grant.save();
    return grant;
  },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = page('Error', `<h1>Error</h1><pre>${esc(JSON.stringify(out, null, 2))}</pre>`);
  },
});

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

function page(title, body) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · Test IdP</title>
<style>body{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem}label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.4rem;box-sizing:border-box}button{margin-top:1rem;padding:.5rem 1rem}.err{color:#a00}</style>
</head><body>${body}</body></html>`;
}

function loginForm(uid, error) {
  return page('Sign in', `<h1>Sign in to the test IdP</h1>
${error ? `<p class="err" role="alert">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login">
<label for="username">Username</label><input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>`);
}

function otpForm(uid, error) {
  return page('Second factor', `<h1>Enter your one-time code</h1>
${error ? `<p class="err" role="alert">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/otp">
<label for="otp">Code from your authenticator app</label><input id="otp" name="otp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required autofocus>
<button type="submit">Verify</button>
</form>`);
}

// Users who passed the password step and owe a TOTP code, by interaction uid.
const pendingOTP = new Map();

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
      if (body.length > 10000) reject(new Error('body too large'));
    });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

function send(res, status, html) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

async function finish(req, res, accountId, mfa) {
  await provider.interactionFinished(req, res, {
    login: {
      accountId,
      amr: mfa ? ['pwd', 'otp'] : ['pwd'],
      acr: mfa ? MFA_ACR : PWD_ACR,
    },
  }, { mergeWithLastSubmission: false });
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    send(res, 400, page('Error', '<h1>Interaction mismatch</h1>'));
    return;
  }
  if (details.prompt.name !== 'login') {
    // Consent is implied for the first-party client (loadExistingGrant).
    await provider.interactionFinished(req, res, {}, { mergeWithLastSubmission: true });
    return;
  }
  if (req.method === 'GET' && !action) {
    send(res, 200, pendingOTP.has(uid) ? otpForm(uid) : loginForm(uid));
    return;
  }
  if (req.method !== 'POST') {
    send(res, 405, page('Error', '<h1>Method not allowed</h1>'));
    return;
  }
  const form = await readForm(req);
  if (action === 'login') {
    const name = form.get('username') || '';
    const u = Object.hasOwn(users, name) ? users[name] : undefined;
    const pw = Buffer.from(form.get('password') || '');
    const want = Buffer.from(u ? u.password : 'x'.repeat(pw.length || 1));
    if (!u || pw.length !== want.length || !crypto.timingSafeEqual(pw, want)) {
      send(res, 401, loginForm(uid, 'Wrong username or password.'));
      return;
    }
    const mfaAsked = list(details.params.acr_values).includes(MFA_ACR);
    if (u.totp && (!u.totpOnDemand || mfaAsked)) {
      pendingOTP.set(uid, name);
      send(res, 200, otpForm(uid));
      return;
    }
    await finish(req, res, name, false);
    return;
  }
  if (action === 'otp') {
    const name = pendingOTP.get(uid);
    if (!name) {
      send(res, 400, loginForm(uid, 'Sign in with your password first.'));
      return;
    }
    if (!totpOK(users[name].totp, (form.get('otp') || '').trim())) {
      send(res, 401, otpForm(uid, 'That code is not valid.'));
      return;
    }
    pendingOTP.delete(uid);
    await finish(req, res, name, true);
    return;
  }
  send(res, 404, page('Error', '<h1>Not found</h1>'));
}

const oidc = provider.callback();
const server = http.createServer((req, res) => {
  const m = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|otp))?\/?$/.exec(req.url.split('?')[0]);
  if (!m) {
    oidc(req, res);
    return;
  }
  interaction(req, res, m[1], m[2]).catch((err) => {
    console.error('interaction error:', err);
    if (!res.headersSent) send(res, 400, page('Error', `<h1>Sign-in failed</h1><p>${esc(err.message)}</p>`));
  });
});
server.listen(port, '127.0.0.1', () => {
  console.log(`issuer=${issuer}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
