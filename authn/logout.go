package authn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// handleLogoutConfirm shows the sign-out confirmation (a GET never signs
// anyone out: a link or image on another site cannot end the session).
// A cookie copy that has idled out here (each host's copy in cookie mode
// has its own idle clock) still names the session the browser holds on
// other hosts: the form is shown for it, so signing out here ends it
// everywhere.
func (a *Authn) handleLogoutConfirm(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	host := requestHost(r)
	s, err := a.loadSession(ctx, r, host, true)
	if errors.Is(err, errNoSession) {
		s, err = a.unrevokedSession(ctx, r, host)
	}
	if errors.Is(err, errNoSession) {
		if host != a.central {
			// This host's cookie may name a superseded session while the
			// central host still holds a live one: sign out there.
			a.clearChunked(w, r, a.sessionCookie())
			http.Redirect(w, r, a.url(a.central, PathLogout, nil), http.StatusFound)
			return
		}
		a.clearChunked(w, r, a.sessionCookie())
		a.renderSignedOut(w, r, false)
		return
	}
	if err != nil {
		a.renderError(w, r, http.StatusServiceUnavailable, "Sign-out is unavailable right now.", "")
		return
	}
	a.renderLogout(w, r, s, a.seal.token("logout", s.ID, host))
}

// unrevokedSession is the session of an authentic cookie for host that
// loadSession refused for its idle time or lifetime only.
func (a *Authn) unrevokedSession(ctx context.Context, r *http.Request, host string) (*Session, error) {
	s, err := a.openSession(ctx, r, host)
	if err != nil {
		return nil, err
	}
	if err := a.checkRevoked(ctx, s); err != nil {
		return nil, err
	}
	return s, nil
}

// handleLogout ends the session: revoked everywhere (every host, every
// replica), the record deleted, this host's cookie cleared; then the
// central host clears its cookie and continues to the IdP's logout. The
// session is the one this host's authentic cookie names, even when that
// copy has idled out or the session is already revoked (a retry after an
// unrecorded sign-out): the CSRF token, made for that session id on this
// host, proves the form came from this host's confirmation page.
func (a *Authn) handleLogout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	host := requestHost(r)
	s, err := a.openSession(ctx, r, host)
	if errors.Is(err, errNoSession) {
		a.clearChunked(w, r, a.sessionCookie())
		if host != a.central {
			http.Redirect(w, r, a.url(a.central, PathLogout, nil), http.StatusSeeOther)
			return
		}
		a.renderSignedOut(w, r, false)
		return
	}
	if err != nil {
		a.renderError(w, r, http.StatusServiceUnavailable, "Sign-out is unavailable right now.", "")
		return
	}
	if err := r.ParseForm(); err != nil || !a.seal.checkToken(r.PostForm.Get("csrf"), "logout", s.ID, host) {
		a.renderError(w, r, http.StatusForbidden, "The sign-out form has expired. Please try again.", a.url(host, PathLogout, nil))
		return
	}
	if err := a.endSession(ctx, s.ID, a.o.Session.Lifetime); err != nil {
		a.renderError(w, r, http.StatusServiceUnavailable, "Sign-out could not be completed. Please try again.", "")
		return
	}
	// The audit record is what a memory-store instance replays at start: a
	// logout it does not hold would be undone by a restart. The session is
	// already revoked here; the user is told sign-out did not complete and
	// may submit the form again (the cookie is kept for that).
	if err := a.emit(ctx, r, Event{Type: EventLogout, Outcome: "ok", Subject: s.Subject, Email: s.Email, SessionID: s.ID}); err != nil {
		a.o.Logger.Error("logout not recorded", "err", err)
		a.renderError(w, r, http.StatusServiceUnavailable, "Sign-out could not be recorded, so it did not complete. Please try again shortly.", a.url(host, PathLogout, nil))
		return
	}
	a.clearChunked(w, r, a.sessionCookie())
	if host == a.central {
		if u := a.endSessionURL(ctx, s.IDToken); u != "" {
			http.Redirect(w, r, u, http.StatusSeeOther)
			return
		}
		http.Redirect(w, r, a.signedOutURL(), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, a.url(a.central, PathLogoutDone, nil), http.StatusSeeOther)
}

// endSession revokes id and deletes its record.
func (a *Authn) endSession(ctx context.Context, id string, ttl time.Duration) error {
	if err := a.o.Store.Revoke(ctx, id, ttl); err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	if err := a.o.Store.Delete(ctx, id); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// handleLogoutDone runs on the central host after a logout: it clears the
// central cookie and continues to the IdP's end_session_endpoint with
// id_token_hint. It acts only when the central session is already revoked,
// so a link to it cannot sign anyone out.
func (a *Authn) handleLogoutDone(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if requestHost(r) != a.central {
		http.Redirect(w, r, a.url(a.central, PathLogoutDone, nil), http.StatusFound)
		return
	}
	// The central copy may have idled out while a route host was in use:
	// it is still the cookie to clear and the ID token to hand the IdP.
	s, err := a.openSession(ctx, r, a.central)
	if errors.Is(err, errNoSession) {
		a.renderSignedOut(w, r, false)
		return
	}
	if err != nil {
		a.renderError(w, r, http.StatusServiceUnavailable, "Sign-out is unavailable right now.", "")
		return
	}
	rev, err := a.o.Store.Revoked(ctx, s.ID, s.Subject, time.UnixMilli(s.Created))
	if err != nil {
		a.renderError(w, r, http.StatusServiceUnavailable, "Sign-out is unavailable right now.", "")
		return
	}
	if !rev {
		// Signed out elsewhere with an older session, or someone linked here.
		http.Redirect(w, r, a.url(a.central, PathLogout, nil), http.StatusFound)
		return
	}
	a.clearChunked(w, r, a.sessionCookie())
	if u := a.endSessionURL(ctx, s.IDToken); u != "" {
		http.Redirect(w, r, u, http.StatusFound)
		return
	}
	a.renderSignedOut(w, r, true)
}

// signedOutTTL is how long the proof that a sign-out revoked a session
// stays valid for the signed-out page.
const signedOutTTL = 10 * time.Minute

// signedOutState is a short-lived sealed proof, for the central host, that
// a sign-out has just revoked a session; it goes to the IdP as the logout
// state and comes back to PathSignedOut.
func (a *Authn) signedOutState() string {
	return a.seal.seal("signed_out", a.central, a.now().Add(signedOutTTL), []byte("1"))
}

func (a *Authn) signedOutURL() string {
	return a.url(a.central, PathSignedOut, url.Values{"state": {a.signedOutState()}})
}

// handleSignedOut is where the IdP's logout returns. It says "signed out
// everywhere" only with the proof that a revocation happened; anyone may
// link here, so without it the page says only that this host has no
// session.
func (a *Authn) handleSignedOut(w http.ResponseWriter, r *http.Request) {
	_, err := a.seal.open("signed_out", a.central, a.now(), r.URL.Query().Get("state"))
	a.renderSignedOut(w, r, err == nil && requestHost(r) == a.central)
}

// handleStatus shows who is signed in on this host.
func (a *Authn) handleStatus(w http.ResponseWriter, r *http.Request) {
	s, err := a.loadSession(r.Context(), r, requestHost(r), true)
	if err != nil && !errors.Is(err, errNoSession) {
		a.renderError(w, r, http.StatusServiceUnavailable, "Session state is unavailable right now.", "")
		return
	}
	a.renderStatus(w, r, s)
}

// RevokeSession ends session id on every host and replica. reason is
// recorded.
func (a *Authn) RevokeSession(ctx context.Context, id, reason string) error {
	if id == "" {
		return fmt.Errorf("revoke session: empty id")
	}
	if err := a.endSession(ctx, id, a.o.Session.Lifetime); err != nil {
		return err
	}
	return a.emit(ctx, nil, Event{Type: EventSessionRevoked, Outcome: "ok", SessionID: id, Reason: reason,
		Fields: map[string]any{"scope": "session"}})
}

// RevokeUser ends every session of subject that exists now, on every host
// and replica. Sessions made after the call are not affected.
func (a *Authn) RevokeUser(ctx context.Context, subject, reason string) error {
	if subject == "" {
		return fmt.Errorf("revoke user: empty subject")
	}
	if err := a.o.Store.RevokeUser(ctx, subject, a.now(), a.o.Session.Lifetime); err != nil {
		return fmt.Errorf("revoke user %s: %w", subject, err)
	}
	return a.emit(ctx, nil, Event{Type: EventSessionRevoked, Outcome: "ok", Subject: subject, Reason: reason,
		Fields: map[string]any{"scope": "user"}})
}

// LoginURL is where a browser on host starts signing in to come back to rd.
func (a *Authn) LoginURL(host, rd string) string {
	return a.url(host, PathStart, url.Values{"rd": {rd}})
}

// LogoutURL is the sign-out page on host.
func (a *Authn) LogoutURL(host string) string { return a.url(host, PathLogout, nil) }
