package authn

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ssoCode is what the central host hands a route host, sealed for that
// host, valid for ssoCodeTTL, redeemable once, only by the browser holding
// the bind cookie.
type ssoCode struct {
	JTI    string   `json:"j"`
	Bind   string   `json:"b"` // bind id "." sha256(bind value)
	SID    string   `json:"sid,omitempty"`
	Sess   *Session `json:"s,omitempty"` // cookie mode: the session itself
	Return string   `json:"rd"`
}

// beginSSO starts sign-in for a route host's browser request: a bind cookie
// on this host, then the central login. rd is the absolute URL to come back
// to (on this host).
func (a *Authn) beginSSO(w http.ResponseWriter, r *http.Request, rd string, wantMFA, stepUp bool) {
	host := requestHost(r)
	q := url.Values{"rd": {rd}}
	if wantMFA {
		q.Set("mfa", "1")
	}
	if stepUp {
		q.Set("step", "1")
	}
	if host != a.central {
		id := randomID(6)
		bs := bindState{Value: randomID(32), Return: rd}
		plain, _ := json.Marshal(bs)
		exp := a.now().Add(loginTTL)
		http.SetCookie(w, a.newCookie(a.bindCookie(id), a.seal.seal("bind", host, exp, plain), int(loginTTL.Seconds())))
		q.Set("b", id+"."+sha256B64(bs.Value))
	}
	http.Redirect(w, r, a.url(a.central, PathLogin, q), http.StatusFound)
}

// validBind checks the "id.hash" form of a bind parameter.
func validBind(b string) bool {
	id, h, ok := strings.Cut(b, ".")
	if !ok || len(id) != 8 || len(h) != 43 {
		return false
	}
	for _, c := range id + h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// handleLogin is the central host's sign-in entry: it hands an existing
// session on, or starts an IdP login.
func (a *Authn) handleLogin(w http.ResponseWriter, r *http.Request) {
	if requestHost(r) != a.central {
		// Sign-in always starts at the central host.
		http.Redirect(w, r, a.url(a.central, PathLogin, r.URL.Query()), http.StatusFound)
		return
	}
	q := r.URL.Query()
	rawRD := q.Get("rd")
	if rawRD == "" {
		rawRD = PathStatus
	}
	rd, ok := SafeReturnURL(rawRD, a.scheme, a.central, a.served)
	if !ok {
		a.renderError(w, r, http.StatusBadRequest, "The address to return to after sign-in is not one this gateway serves.", "")
		return
	}
	bind := ""
	if hostOf(rd) != a.central {
		bind = q.Get("b")
		if !validBind(bind) {
			a.renderError(w, r, http.StatusBadRequest, "This sign-in link is not valid. Please start again from the application.", rd)
			return
		}
	}
	wantMFA, stepUp := q.Get("mfa") == "1", q.Get("step") == "1"
	s, err := a.loadSession(r.Context(), r, a.central, true)
	if err != nil && !errors.Is(err, errNoSession) {
		a.renderError(w, r, http.StatusServiceUnavailable, "Sign-in is unavailable right now.", rd)
		return
	}
	if s != nil {
		now := a.now()
		mfa := EvaluateMFA(a.o.MFA, s.AMR, s.ACR, time.Unix(s.AuthTime, 0), now)
		tried := s.StepUpTried != 0 && now.Sub(time.Unix(s.StepUpTried, 0)) < a.o.MFA.RetryAfter
		// step=1 asks for a fresh proof even from a session with MFA (an
		// anomaly's step_up): handing the same session back would loop.
		if !wantMFA || (mfa && !stepUp) || tried {
			a.deliver(w, r, s, rd, bind)
			return
		}
		a.startLogin(w, r, loginRequest{Return: rd, Bind: bind, WantMFA: true, StepUp: true, PrevSID: s.ID})
		return
	}
	// A central copy that opens but has idled out (the user kept working
	// on a route host) names a session still live on other hosts: the new
	// login supersedes and revokes it, so the browser never holds two.
	prev, err := a.unrevokedSession(r.Context(), r, a.central)
	if err != nil && !errors.Is(err, errNoSession) {
		a.renderError(w, r, http.StatusServiceUnavailable, "Sign-in is unavailable right now.", rd)
		return
	}
	lr := loginRequest{Return: rd, Bind: bind, WantMFA: wantMFA, StepUp: stepUp}
	if prev != nil {
		lr.PrevSID = prev.ID
	}
	a.startLogin(w, r, lr)
}

// deliver sends the browser on to rd with session s: directly on the
// central host, else through a one-time code redeemed at rd's host.
func (a *Authn) deliver(w http.ResponseWriter, r *http.Request, s *Session, rd, bind string) {
	host := hostOf(rd)
	if host == a.central {
		http.Redirect(w, r, rd, http.StatusFound)
		return
	}
	if !validBind(bind) || !a.served(host) {
		a.renderError(w, r, http.StatusBadRequest, "This sign-in link is not valid. Please start again from the application.", "")
		return
	}
	code := ssoCode{JTI: randomID(16), Bind: bind, Return: rd}
	if a.o.ServerSide {
		code.SID = s.ID
	} else {
		c := *s
		c.IDToken = ""
		code.Sess = &c
	}
	plain, err := json.Marshal(code)
	if err != nil {
		a.renderError(w, r, http.StatusInternalServerError, "Sign-in could not be completed.", "")
		return
	}
	sealed := a.seal.seal("sso", host, a.now().Add(ssoCodeTTL), plain)
	http.Redirect(w, r, a.url(host, PathCallback, url.Values{"gh_sso": {sealed}}), http.StatusFound)
}

// handleCallback is the IdP's redirect target on the central host and the
// SSO code redemption on route hosts.
func (a *Authn) handleCallback(w http.ResponseWriter, r *http.Request) {
	if code := r.URL.Query().Get("gh_sso"); code != "" {
		a.redeem(w, r, code)
		return
	}
	if requestHost(r) != a.central {
		a.renderError(w, r, http.StatusBadRequest, "This sign-in link is not valid.", "")
		return
	}
	a.oidcCallback(w, r)
}

// redeem turns a one-time code into this host's session cookie.
func (a *Authn) redeem(w http.ResponseWriter, r *http.Request, raw string) {
	ctx := r.Context()
	host := requestHost(r)
	now := a.now()
	var code ssoCode
	plain, err := a.seal.open("sso", host, now, raw)
	if err != nil || json.Unmarshal(plain, &code) != nil || !validBind(code.Bind) {
		a.renderError(w, r, http.StatusBadRequest, "This sign-in link has expired or is not valid. Please open the application again.", "")
		return
	}
	id, hash, _ := strings.Cut(code.Bind, ".")
	bc, err := r.Cookie(a.bindCookie(id))
	var bs bindState
	if err == nil {
		var p []byte
		p, err = a.seal.open("bind", host, now, bc.Value)
		if err == nil {
			err = json.Unmarshal(p, &bs)
		}
	}
	if err != nil || subtle.ConstantTimeCompare([]byte(sha256B64(bs.Value)), []byte(hash)) != 1 {
		a.renderError(w, r, http.StatusBadRequest, "This sign-in link was made for another browser or tab. Please open the application again.", "")
		return
	}
	a.clearCookie(w, a.bindCookie(id))
	first, err := a.o.Store.UseOnce(ctx, "sso:"+code.JTI, 2*ssoCodeTTL)
	if err != nil {
		a.renderError(w, r, http.StatusServiceUnavailable, "Sign-in is unavailable right now.", "")
		return
	}
	if !first {
		a.renderError(w, r, http.StatusBadRequest, "This sign-in link was already used. Please open the application again.", "")
		return
	}
	var s *Session
	if a.o.ServerSide {
		s, err = a.o.Store.Get(ctx, code.SID)
	} else if code.Sess != nil {
		s = code.Sess
	} else {
		err = ErrNotFound
	}
	if err == nil {
		var rev bool
		rev, err = a.o.Store.Revoked(ctx, s.ID, s.Subject, time.UnixMilli(s.Created))
		if err == nil && rev {
			err = ErrNotFound
		}
	}
	if errors.Is(err, ErrNotFound) {
		a.renderError(w, r, http.StatusUnauthorized, "Your session has ended. Please open the application again.", "")
		return
	}
	if err != nil {
		a.renderError(w, r, http.StatusServiceUnavailable, "Sign-in is unavailable right now.", "")
		return
	}
	s.LastSeen = now.Unix()
	if err := a.saveSession(ctx, w, r, host, s); err != nil {
		a.renderError(w, r, http.StatusInternalServerError, "Your session could not be saved.", "")
		return
	}
	rd, ok := SafeReturnURL(bs.Return, a.scheme, host, a.served)
	if !ok || hostOf(rd) != host {
		rd = a.url(host, "/", nil)
	}
	http.Redirect(w, r, rd, http.StatusFound)
}

// handleStart begins sign-in on a route host (for forward-auth setups and
// the sign-in interstitial): GET /.gatehouse/start?rd=URL on this host.
func (a *Authn) handleStart(w http.ResponseWriter, r *http.Request) {
	host := requestHost(r)
	rd, ok := SafeReturnURL(r.URL.Query().Get("rd"), a.scheme, host, a.served)
	if !ok || hostOf(rd) != host {
		a.renderError(w, r, http.StatusBadRequest, "The address to return to after sign-in is not valid.", "")
		return
	}
	route, _ := a.routeFor(host, pathOf(rd))
	s, err := a.loadSession(r.Context(), r, host, true)
	if err != nil && !errors.Is(err, errNoSession) {
		a.renderError(w, r, http.StatusServiceUnavailable, "Sign-in is unavailable right now.", "")
		return
	}
	wantMFA := route.MFARequired || r.URL.Query().Get("mfa") == "1"
	// step=1: a fresh proof is wanted even from a session with MFA (an
	// anomaly's step-up, asked for by forward-auth).
	stepUp := r.URL.Query().Get("step") == "1"
	if s != nil && (!wantMFA || a.identity(s).MFA && !stepUp) {
		http.Redirect(w, r, rd, http.StatusFound)
		return
	}
	if s != nil && wantMFA && s.StepUpTried != 0 && a.now().Sub(time.Unix(s.StepUpTried, 0)) < a.o.MFA.RetryAfter {
		// The IdP was just asked and gave no (fresh) MFA: say so rather
		// than send the browser round again (forward-auth would loop).
		a.renderMFAUnavailable(w, r, route, s)
		return
	}
	a.beginSSO(w, r, rd, wantMFA, s != nil)
}

func pathOf(abs string) string {
	u, err := url.Parse(abs)
	if err != nil {
		return "/"
	}
	return u.Path
}

// routeFor finds the route of host (host[:port]) and path. Without a
// RouteFor option every served host is its own route, MFA optional; with
// one, an unknown route reports false.
func (a *Authn) routeFor(host, path string) (Route, bool) {
	if a.o.RouteFor == nil {
		return Route{Name: host, Host: host}, true
	}
	if rt, ok := a.o.RouteFor(host, path); ok {
		return rt, true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		if rt, ok := a.o.RouteFor(h, path); ok {
			return rt, true
		}
	}
	return Route{Name: host, Host: host}, false
}
