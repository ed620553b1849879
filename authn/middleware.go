package authn

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// identity is the Identity of s now.
func (a *Authn) identity(s *Session) Identity {
	var at time.Time
	if s.AuthTime != 0 {
		at = time.Unix(s.AuthTime, 0)
	}
	return Identity{
		Subject:   s.Subject,
		Email:     s.Email,
		Name:      s.Name,
		Groups:    s.Groups,
		Roles:     s.Roles,
		SessionID: s.ID,
		MFA:       EvaluateMFA(a.o.MFA, s.AMR, s.ACR, at, a.now()),
		AMR:       s.AMR,
		ACR:       s.ACR,
		AuthTime:  at,
	}
}

// Authenticate finds the identity behind r, a request for route. When
// handled is true the client has been answered (sent to sign in, told to
// step up, or shown why not) and the caller stops. A public route without
// a session yields the zero Identity. An error means the session state
// could not be read: the caller refuses the request.
func (a *Authn) Authenticate(w http.ResponseWriter, r *http.Request, route Route) (Identity, bool, error) {
	ctx := r.Context()
	host := requestHost(r)
	s, err := a.loadSession(ctx, r, host, true)
	if err != nil && !errors.Is(err, errNoSession) {
		return Identity{}, false, err
	}
	if s == nil {
		if _, ok := r.Cookie(a.sessionCookie()); ok == nil {
			a.clearChunked(w, r, a.sessionCookie())
		}
		if route.Public {
			return Identity{}, false, nil
		}
		a.challenge(w, r, route, nil, route.MFARequired)
		return Identity{}, true, nil
	}
	id := a.identity(s)
	if route.MFARequired && !id.MFA && !route.DeferStepUp {
		a.StepUp(w, r, route, id, "route requires multi-factor authentication")
		return id, true, nil
	}
	if err := a.touch(ctx, w, r, s); err != nil {
		return Identity{}, false, fmt.Errorf("refresh session: %w", err)
	}
	return id, false, nil
}

// StepUp answers r so that the user signs in again with MFA and comes back
// to the same URL: a redirect for browsers, an RFC 9470 401 for API
// clients. When a step-up was already tried recently and brought no MFA,
// the browser gets an honest page instead of another round trip.
func (a *Authn) StepUp(w http.ResponseWriter, r *http.Request, route Route, id Identity, reason string) {
	var s *Session
	if id.Authenticated() {
		s = &Session{ID: id.SessionID, Subject: id.Subject}
		if ls, err := a.loadSession(r.Context(), r, requestHost(r), true); err == nil {
			s = ls
		}
	}
	a.o.Logger.Debug("step-up", "route", route.Name, "reason", reason)
	a.challenge(w, r, route, s, true)
}

// IsAPIClient reports whether r comes from a program rather than a browser
// navigation: Accept: application/json without text/html, XHR/fetch, or a
// method other than GET/HEAD that is not a top-level form navigation.
func IsAPIClient(r *http.Request) bool {
	if strings.EqualFold(r.Header.Get("X-Requested-With"), "XMLHttpRequest") {
		return true
	}
	accept := r.Header.Get("Accept")
	if strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html") {
		return true
	}
	switch r.Header.Get("Sec-Fetch-Mode") {
	case "cors", "no-cors", "same-origin", "websocket":
		return true
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return !isFormNavigation(r)
	}
	if r.Header.Get("Upgrade") != "" {
		return true
	}
	return false
}

func isFormNavigation(r *http.Request) bool {
	return r.Header.Get("Sec-Fetch-Mode") == "navigate" ||
		(r.Header.Get("Sec-Fetch-Mode") == "" && strings.Contains(r.Header.Get("Accept"), "text/html"))
}

// challenge answers a request that needs (stronger) sign-in.
func (a *Authn) challenge(w http.ResponseWriter, r *http.Request, route Route, s *Session, wantMFA bool) {
	host := requestHost(r)
	rd, ok := SafeReturnURL(r.URL.RequestURI(), a.scheme, host, a.served)
	if !ok {
		rd = a.url(host, "/", nil)
	}
	w.Header().Set("Cache-Control", "no-store")
	startURL := a.url(host, PathStart, url.Values{"rd": {rd}})
	if wantMFA {
		startURL = a.url(host, PathStart, url.Values{"rd": {rd}, "mfa": {"1"}})
	}
	if IsAPIClient(r) {
		a.apiChallenge(w, s != nil, wantMFA, startURL)
		return
	}
	now := a.now()
	if s != nil && wantMFA && s.StepUpTried != 0 && now.Sub(time.Unix(s.StepUpTried, 0)) < a.o.MFA.RetryAfter {
		// One attempt was made and the IdP gave no MFA: say so, do not loop.
		a.renderMFAUnavailable(w, r, route, s)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		// A form post: the body cannot survive the IdP round trip. Say so.
		a.renderSignIn(w, r, http.StatusUnauthorized, route, startURL, true)
		return
	}
	a.beginSSO(w, r, rd, wantMFA, s != nil && wantMFA)
}

// apiError is the JSON body of a 401 for API clients.
type apiError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	LoginURL    string `json:"login_url"`
	Retry       bool   `json:"retry"`
	ACRValues   string `json:"acr_values,omitempty"`
	MaxAge      *int   `json:"max_age,omitempty"`
}

func (a *Authn) apiChallenge(w http.ResponseWriter, signedIn, wantMFA bool, startURL string) {
	body := apiError{
		Error:       "login_required",
		Description: "Sign in, then send the request again; it was not processed.",
		LoginURL:    startURL,
		Retry:       true,
	}
	wa := `Bearer realm="gatehouse", error="invalid_token", error_description="sign-in required"`
	if signedIn && wantMFA {
		body.Error = "insufficient_user_authentication"
		body.Description = "Multi-factor sign-in is required. Sign in again with MFA, then send the request again; it was not processed."
		wa = `Bearer realm="gatehouse", error="insufficient_user_authentication", error_description="multi-factor authentication required"`
		if acr := a.o.MFA.StepUpACR; acr != "" {
			wa += `, acr_values="` + acr + `"`
			body.ACRValues = acr
		}
		if a.o.MFA.MaxAge > 0 {
			ma := int(a.o.MFA.MaxAge.Seconds())
			wa += `, max_age=` + strconv.Itoa(ma)
			body.MaxAge = &ma
		}
	}
	w.Header().Set("WWW-Authenticate", wa)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusUnauthorized)
	_ = json.NewEncoder(w).Encode(body)
}
