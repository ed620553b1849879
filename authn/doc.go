// Package authn signs people in with OpenID Connect and keeps them signed in.
//
// It owns the whole browser side of authentication and nothing else: the
// authorization-code flow with PKCE (S256), state and nonce bound to a
// sealed, short-lived, single-use login cookie; ID-token verification
// (issuer, audience, expiry, nonce, an allow-list of asymmetric signing
// algorithms, at_hash); MFA facts from amr/acr/auth_time; step-up; sealed
// session cookies (AES-GCM, key rotation, chunking) or a server-side Store
// (memory or Redis); logout and revocation; identity headers and a signed
// JWT assertion for upstreams; the forward-auth endpoint.
//
// # Hosts and single sign-on
//
// Gatehouse serves many route hosts (chat.example.com, files.example.com)
// and one central host, the host of Options.ExternalURL. Cookies are always
// host-only (the __Host- prefix when served over HTTPS); nothing is set on a
// parent domain. The central host holds the IdP session: the OIDC callback
// lands there. A route host without a session sets a host-only "bind" cookie
// holding a random value and the URL asked for, and sends the browser to the
// central /.gatehouse/login with the SHA-256 of that value. The central host
// (after an IdP login if it has no session itself) answers with a one-time
// code sealed for that route host, valid for a minute, that names the
// session and the bind hash. The route host's /.gatehouse/callback redeems
// it only with the matching bind cookie (so a code cannot be planted in
// another browser), only once (the Store remembers used codes), and sets its
// own host-only session cookie for the same session id. Logout and
// revocation act on the session id, so they reach every host.
//
// # Sessions
//
// In cookie mode the sealed session record is the cookie (split into chunks
// when it grows past one cookie); the Store keeps only the revocation list
// and single-use markers. In server mode (Options.ServerSide) the cookie
// holds only the sealed session id and the record lives in the Store, so
// several replicas share it (Redis). A new random 256-bit session id is made
// at every login, including step-up, so a session id never survives a
// change of authentication (no fixation).
//
// # The request path
//
// Authenticating a request costs no network round trip and almost no
// crypto: decoded session cookies are cached under the SHA-256 of host and
// value (lifetime, idle time and revocation still judged every time, never
// extended); the upstream assertion and header values are cached per
// session, route and MFA for half the token's lifetime and only for the same
// identity facts; with Redis, RedisStore.Watch keeps a local revocation view
// current (generation counter polled every 50ms, full reload every second),
// trusted only while fresh (else per-request checks, failing closed). A
// revocation applies at once on the replica that made it and within ~50ms
// (at most the 500ms grace) on the others.
//
// # What callers see
//
// The proxy calls Authenticate for each routed request and gets an Identity
// or an answer already written to the client (redirect for browsers, 401
// JSON for API clients). It mounts Handler under /.gatehouse/ on every host.
// Every login, failed login, logout, step-up and revocation is reported
// through Options.Events before the user goes on: when the event cannot be
// recorded the action fails (fail closed). The package knows nothing of
// policy, audit or the proxy: it defines its own Options, Identity and
// Event types, and the proxy adapts them.
package authn
