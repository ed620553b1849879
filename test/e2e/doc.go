// Package e2e holds Gatehouse's end-to-end tests: the whole server as
// `gatehouse serve` runs it (config loaded from YAML, every package builder
// wired, local-CA TLS on loopback) in front of the demo apps, signing in
// against the real test IdP (npm oidc-provider, test/idp), driven by a real
// headless Chromium (the staff journey) and reached through a real nginx
// using auth_request against the forward-auth endpoint.
//
// The tests need node with test/idp installed, chromium and nginx
// (scripts/install-deps.sh). Under -short a missing peer skips the test;
// otherwise it fails. Screenshots of the journey are written to
// test-artifacts/ at the repository root (ignored by git).
package e2e
