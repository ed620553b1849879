package authn

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// provider is the discovered IdP.
type provider struct {
	p          *oidc.Provider
	verifier   *oidc.IDTokenVerifier
	oauth      oauth2.Config
	endSession string
	userinfo   bool
}

// ErrIdP marks failures talking to the identity provider.
var ErrIdP = errors.New("authn: identity provider")

// provider discovers the IdP once; failures are retried at most every 5 s.
func (a *Authn) provider(ctx context.Context) (*provider, error) {
	st := &a.idp
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.p != nil {
		return st.p, nil
	}
	if st.lastErr != nil && time.Since(st.lastTry) < 5*time.Second {
		return nil, st.lastErr
	}
	st.lastTry = time.Now()
	dctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, a.o.HTTPClient), 10*time.Second)
	defer cancel()
	op, err := oidc.NewProvider(dctx, a.o.Issuer)
	if err != nil {
		st.lastErr = fmt.Errorf("%w: discovery of %s: %v", ErrIdP, a.o.Issuer, err)
		return nil, st.lastErr
	}
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
		UserInfo   string `json:"userinfo_endpoint"`
	}
	if err := op.Claims(&meta); err != nil {
		st.lastErr = fmt.Errorf("%w: discovery document: %v", ErrIdP, err)
		return nil, st.lastErr
	}
	p := &provider{
		p: op,
		verifier: op.Verifier(&oidc.Config{
			ClientID:             a.o.ClientID,
			SupportedSigningAlgs: a.o.AllowedAlgs,
			Now:                  a.o.Clock,
		}),
		oauth: oauth2.Config{
			ClientID:     a.o.ClientID,
			ClientSecret: a.o.ClientSecret,
			Endpoint:     op.Endpoint(),
			RedirectURL:  a.url(a.central, PathCallback, nil),
			Scopes:       a.o.Scopes,
		},
		endSession: meta.EndSession,
		userinfo:   meta.UserInfo != "",
	}
	st.p, st.lastErr = p, nil
	return p, nil
}

// loginRequest is what starts an IdP round trip.
type loginRequest struct {
	Return  string
	Bind    string
	WantMFA bool
	StepUp  bool // a fresh login is required (prompt=login): no MFA, or an anomaly step-up
	PrevSID string
}

// startLogin sets the login cookie and redirects the browser to the IdP.
func (a *Authn) startLogin(w http.ResponseWriter, r *http.Request, lr loginRequest) {
	p, err := a.provider(r.Context())
	if err != nil {
		a.o.Logger.Error("login: identity provider unavailable", "err", err)
		a.renderError(w, r, http.StatusBadGateway, "The sign-in service is not reachable right now.", lr.Return)
		return
	}
	st := loginState{
		State:    randomID(24),
		Nonce:    randomID(24),
		Verifier: oauth2.GenerateVerifier(),
		Return:   lr.Return,
		Bind:     lr.Bind,
		WantMFA:  lr.WantMFA,
		StepUp:   lr.StepUp,
		PrevSID:  lr.PrevSID,
	}
	if lr.StepUp {
		st.Started = a.now().Unix()
	}
	plain, err := json.Marshal(st)
	if err != nil {
		a.renderError(w, r, http.StatusInternalServerError, "Sign-in could not start.", lr.Return)
		return
	}
	exp := a.now().Add(loginTTL)
	http.SetCookie(w, a.newCookie(a.loginCookie(st.State), a.seal.seal("login", a.central, exp, plain), int(loginTTL.Seconds())))
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(st.Verifier), oidc.Nonce(st.Nonce)}
	if lr.WantMFA {
		if a.o.MFA.StepUpACR != "" {
			opts = append(opts, oauth2.SetAuthURLParam("acr_values", a.o.MFA.StepUpACR))
		}
		if a.o.MFA.MaxAge > 0 {
			opts = append(opts, oauth2.SetAuthURLParam("max_age", strconv.Itoa(int(a.o.MFA.MaxAge.Seconds()))))
		}
		if lr.StepUp {
			opts = append(opts, oauth2.SetAuthURLParam("prompt", "login"))
		}
	}
	http.Redirect(w, r, p.oauth.AuthCodeURL(st.State, opts...), http.StatusFound)
}

// Login failures (each a named reason in the login_failure event).
var (
	errBadState     = errors.New("state does not match a login in progress")
	errReplay       = errors.New("login state already used")
	errNonce        = errors.New("nonce mismatch")
	errNoIDToken    = errors.New("token response has no id_token")
	errAtHash       = errors.New("at_hash does not match the access token")
	errUserinfoSub  = errors.New("userinfo sub differs from the ID token")
	errIdPRefused   = errors.New("identity provider returned an error")
	errBadClaimType = errors.New("claims could not be read")
)

// oidcCallback finishes the IdP round trip on the central host.
func (a *Authn) oidcCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	state := q.Get("state")
	fail := func(status int, reason error, msg, ret string) {
		a.o.Logger.Warn("login failed", "reason", reason)
		if err := a.emit(ctx, r, Event{Type: EventLoginFailure, Outcome: "failed", Reason: reason.Error()}); err != nil {
			a.o.Logger.Error("audit", "err", err)
		}
		a.renderError(w, r, status, msg, ret)
	}
	if state == "" || len(state) > 64 {
		fail(http.StatusBadRequest, errBadState, "This sign-in link is not valid. Please start again.", "")
		return
	}
	cname := a.loginCookie(state)
	c, err := r.Cookie(cname)
	if err != nil {
		fail(http.StatusBadRequest, errBadState, "This sign-in link has expired or was opened in another browser. Please start again.", "")
		return
	}
	a.clearCookie(w, cname)
	plain, err := a.seal.open("login", a.central, a.now(), c.Value)
	var st loginState
	if err != nil || json.Unmarshal(plain, &st) != nil || subtle.ConstantTimeCompare([]byte(st.State), []byte(state)) != 1 {
		fail(http.StatusBadRequest, errBadState, "This sign-in link is not valid. Please start again.", "")
		return
	}
	first, err := a.o.Store.UseOnce(ctx, "state:"+st.State, loginTTL)
	if err != nil {
		a.renderError(w, r, http.StatusServiceUnavailable, "Sign-in is unavailable right now.", st.Return)
		return
	}
	if !first {
		fail(http.StatusBadRequest, errReplay, "This sign-in link was already used. Please start again.", st.Return)
		return
	}
	if e := q.Get("error"); e != "" {
		fail(http.StatusUnauthorized, fmt.Errorf("%w: %s", errIdPRefused, safeText(e)), "The identity provider did not sign you in.", st.Return)
		return
	}
	prof, rawID, err := a.exchange(ctx, q.Get("code"), st)
	if err != nil {
		fail(http.StatusUnauthorized, err, "Sign-in could not be completed.", st.Return)
		return
	}
	now := a.now()
	s := &Session{
		ID:       randomID(32),
		Subject:  prof.Subject,
		Email:    prof.Email,
		Name:     prof.Name,
		Groups:   prof.Groups,
		Roles:    prof.Roles,
		AMR:      prof.AMR,
		ACR:      prof.ACR,
		Created:  now.UnixMilli(),
		Expires:  now.Add(a.o.Session.Lifetime).Unix(),
		LastSeen: now.Unix(),
		IDToken:  rawID,
	}
	if !prof.AuthTime.IsZero() {
		s.AuthTime = prof.AuthTime.Unix()
	}
	mfa := EvaluateMFA(a.o.MFA, s.AMR, s.ACR, prof.AuthTime, now)
	// A step-up that brought no MFA, or no fresh authentication (auth_time
	// older than the login, with a minute for clock skew), is not retried
	// at once: the user sees why instead of a redirect loop.
	if st.WantMFA && !mfa || st.StepUp && st.Started != 0 && s.AuthTime < st.Started-60 {
		s.StepUpTried = now.Unix()
	}
	ev := Event{Type: EventLogin, Outcome: "ok", Subject: s.Subject, Email: s.Email, SessionID: s.ID,
		Fields: map[string]any{"amr": s.AMR, "acr": s.ACR, "mfa": mfa, "auth_time": s.AuthTime}}
	if err := a.emit(ctx, r, ev); err != nil {
		a.o.Logger.Error("login not recorded", "err", err)
		a.renderError(w, r, http.StatusServiceUnavailable, "Sign-in could not be recorded, so it was refused. Please try again shortly.", st.Return)
		return
	}
	if st.StepUp || st.WantMFA {
		out := "mfa"
		if !mfa {
			out = "no_mfa"
		}
		if err := a.emit(ctx, r, Event{Type: EventStepUp, Outcome: out, Subject: s.Subject, Email: s.Email, SessionID: s.ID,
			Fields: map[string]any{"previous_session": st.PrevSID}}); err != nil {
			a.renderError(w, r, http.StatusServiceUnavailable, "Sign-in could not be recorded, so it was refused.", st.Return)
			return
		}
	}
	// The superseded session of this browser ends: one browser, one session.
	if st.PrevSID != "" {
		if err := a.o.Store.Revoke(ctx, st.PrevSID, a.o.Session.Lifetime); err != nil {
			a.renderError(w, r, http.StatusServiceUnavailable, "Sign-in is unavailable right now.", st.Return)
			return
		}
		// Recorded as a revocation of its own: the start-up replay of a
		// memory store reads session_revoked and logout records, so the
		// superseded session stays revoked across a restart.
		if err := a.emit(ctx, r, Event{Type: EventSessionRevoked, Outcome: "ok", Subject: s.Subject, SessionID: st.PrevSID,
			Reason: "superseded", Fields: map[string]any{"scope": "session", "successor": s.ID}}); err != nil {
			a.o.Logger.Error("superseded session revocation not recorded", "err", err)
			a.renderError(w, r, http.StatusServiceUnavailable, "Sign-in could not be recorded, so it was refused. Please try again shortly.", st.Return)
			return
		}
	}
	if err := a.saveSession(ctx, w, r, a.central, s); err != nil {
		a.o.Logger.Error("save session", "err", err)
		a.renderError(w, r, http.StatusInternalServerError, "Your session could not be saved.", st.Return)
		return
	}
	a.deliver(w, r, s, st.Return, st.Bind)
}

// exchange redeems the authorization code and verifies the ID token.
func (a *Authn) exchange(ctx context.Context, code string, st loginState) (profile, string, error) {
	var prof profile
	if code == "" {
		return prof, "", fmt.Errorf("%w: no code", errIdPRefused)
	}
	p, err := a.provider(ctx)
	if err != nil {
		return prof, "", err
	}
	cctx, cancel := context.WithTimeout(context.WithValue(ctx, oauth2.HTTPClient, a.o.HTTPClient), 15*time.Second)
	defer cancel()
	tok, err := p.oauth.Exchange(cctx, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		return prof, "", fmt.Errorf("%w: code exchange: %v", ErrIdP, err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return prof, "", errNoIDToken
	}
	idt, err := p.verifier.Verify(oidc.ClientContext(cctx, a.o.HTTPClient), rawID)
	if err != nil {
		return prof, "", fmt.Errorf("verify id token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.Nonce)) != 1 {
		return prof, "", errNonce
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return prof, "", fmt.Errorf("%w: %v", errAtHash, err)
		}
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return prof, "", fmt.Errorf("%w: %v", errBadClaimType, err)
	}
	// Some IdPs (oidc-provider by default) put profile claims in userinfo only.
	_, hasEmail := ClaimPath(claims, a.o.Claims.Email)
	_, hasGroups := ClaimPath(claims, a.o.Claims.Groups)
	if (!hasEmail || !hasGroups) && p.userinfo && tok.AccessToken != "" {
		ui, err := p.p.UserInfo(oidc.ClientContext(cctx, a.o.HTTPClient), oauth2.StaticTokenSource(tok))
		if err == nil {
			if ui.Subject != idt.Subject {
				return prof, "", errUserinfoSub
			}
			extra := map[string]any{}
			if err := ui.Claims(&extra); err == nil {
				for k, v := range extra {
					if _, ok := claims[k]; !ok {
						claims[k] = v
					}
				}
			}
		} else {
			a.o.Logger.Warn("userinfo unavailable; using ID token claims only", "err", err)
		}
	}
	prof, err = readProfile(a.o.Claims, claims)
	if err != nil {
		return prof, "", fmt.Errorf("%w: %v", errBadClaimType, err)
	}
	return prof, rawID, nil
}

// safeText keeps an IdP-supplied token printable and short for logs/audit.
func safeText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
	if len(s) > 100 {
		s = s[:100]
	}
	return s
}

// endSessionURL is the IdP's RP-initiated logout URL for idToken, or "".
func (a *Authn) endSessionURL(ctx context.Context, idToken string) string {
	p, err := a.provider(ctx)
	if err != nil || p.endSession == "" {
		return ""
	}
	u, err := url.Parse(p.endSession)
	if err != nil {
		return ""
	}
	q := u.Query()
	if idToken != "" {
		q.Set("id_token_hint", idToken)
	}
	q.Set("client_id", a.o.ClientID)
	q.Set("post_logout_redirect_uri", a.url(a.central, PathSignedOut, nil))
	q.Set("state", a.signedOutState())
	u.RawQuery = q.Encode()
	return u.String()
}
