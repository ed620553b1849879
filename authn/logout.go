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
func (a *Authn) handleLogoutConfirm(w http.ResponseWriter, r *http.Request) {
	host := requestHost(r)
	s, err := a.loadSession(r.Context(), r, host, true)
	if errors.Is(err, errNoSession) {
		if host != a.central {
			// This host's cookie may name a superseded session while the
			// central host still holds a live one: sign out there.
			a.clearChunked(w, r, a.sessionCookie())
			http.Redirect(w, r, a.url(a.central, PathLogout, nil), http.StatusFound)
			return
		}
		a.renderSignedOut(w, r)
		return
	}
	if err != nil {
		a.renderError(w, r, http.StatusServiceUnavailable, "Sign-out is unavailable right now.", "")
		return
	}
	a.renderLogout(w, r, s, a.seal.token("logout", s.ID, host))
}

// handleLogout ends the session: revoked everywhere (every host, every
// replica), the record deleted, this host's cookie cleared; then the
// central host clears its cookie and continues to the IdP's logout.
func (a *Authn) handleLogout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	host := requestHost(r)
	s, err := a.loadSession(ctx, r, host, true)
	if errors.Is(err, errNoSession) {
		a.clearChunked(w, r, a.sessionCookie())
		if host != a.central {
			http.Redirect(w, r, a.url(a.central, PathLogout, nil), http.StatusSeeOther)
			return
		}
		a.renderSignedOut(w, r)
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
	// may try again (the cookie is kept, so the form works again).
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
		http.Redirect(w, r, a.url(a.central, PathSignedOut, nil), http.StatusSeeOther)
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
	s, err := a.loadSession(ctx, r, a.central, false)
	if errors.Is(err, errNoSession) {
		a.renderSignedOut(w, r)
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
	a.renderSignedOut(w, r)
}

func (a *Authn) handleSignedOut(w http.ResponseWriter, r *http.Request) { a.renderSignedOut(w, r) }

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
