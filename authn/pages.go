package authn

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
)

//go:embed templates/*.html
var templateFS embed.FS

// pages renders the sign-in, error and denied pages. Each page is the
// shared layout plus one content template; no external assets.
type pages struct {
	t map[string]*template.Template
}

var pageNames = []string{"signin", "denied", "mfa_unavailable", "error", "logout", "signed_out", "status"}

func loadPages() (*pages, error) {
	p := &pages{t: map[string]*template.Template{}}
	for _, n := range pageNames {
		t, err := template.ParseFS(templateFS, "templates/layout.html", "templates/"+n+".html")
		if err != nil {
			return nil, fmt.Errorf("parse page %s: %w", n, err)
		}
		p.t[n] = t
	}
	return p, nil
}

// PageData is what the page templates see. Fields unused by a page stay
// empty.
type PageData struct {
	Title     string
	App       string
	User      string
	Groups    []string
	MFA       bool
	RequestID string
	Message   string
	LoginURL  string
	LogoutURL string
	RetryURL  string
	Action    string
	CSRF      string
	FormLost  bool
	// Everywhere: the signed-out page follows a revocation of the session
	// on every host.
	Everywhere bool
}

// render writes page name with status. A template failure yields a bare
// 500, never a half page.
func (p *pages) render(w http.ResponseWriter, status int, name string, d PageData) {
	var buf bytes.Buffer
	t, ok := p.t[name]
	if !ok || t.ExecuteTemplate(&buf, "layout", d) != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func userLabel(email, sub string) string {
	if email != "" {
		return email
	}
	return sub
}

func (a *Authn) renderError(w http.ResponseWriter, r *http.Request, status int, msg, retry string) {
	a.pages.render(w, status, "error", PageData{Title: "Sign-in problem", Message: msg, RetryURL: retry})
}

func (a *Authn) renderSignIn(w http.ResponseWriter, r *http.Request, status int, route Route, loginURL string, formLost bool) {
	a.pages.render(w, status, "signin", PageData{Title: "Sign in", App: route.Name, LoginURL: loginURL, FormLost: formLost})
}

func (a *Authn) renderMFAUnavailable(w http.ResponseWriter, r *http.Request, route Route, s *Session) {
	a.pages.render(w, http.StatusForbidden, "mfa_unavailable", PageData{
		Title: "Multi-factor sign-in needed", App: route.Name,
		User: userLabel(s.Email, s.Subject), LogoutURL: a.LogoutURL(requestHost(r)),
	})
}

func (a *Authn) renderLogout(w http.ResponseWriter, r *http.Request, s *Session, csrf string) {
	a.pages.render(w, http.StatusOK, "logout", PageData{
		Title: "Sign out", User: userLabel(s.Email, s.Subject),
		Action: a.url(requestHost(r), PathLogout, nil), CSRF: csrf,
	})
}

// renderSignedOut shows the signed-out page: "signed out in every app"
// only when everywhere (a revocation has just happened), else that this
// host holds no session.
func (a *Authn) renderSignedOut(w http.ResponseWriter, r *http.Request, everywhere bool) {
	a.pages.render(w, http.StatusOK, "signed_out", PageData{Title: "Signed out", Everywhere: everywhere})
}

func (a *Authn) renderStatus(w http.ResponseWriter, r *http.Request, s *Session) {
	host := requestHost(r)
	d := PageData{Title: "Session", LoginURL: a.url(a.central, PathLogin, nil), LogoutURL: a.LogoutURL(host)}
	if s != nil {
		id := a.identity(s)
		d.User, d.Groups, d.MFA = userLabel(id.Email, id.Subject), id.Groups, id.MFA
	}
	a.pages.render(w, http.StatusOK, "status", d)
}

// DeniedPage is what the "access denied" page shows: never policy
// internals, only what helps the user ask for access.
type DeniedPage struct {
	RequestID string
	App       string
	Identity  Identity
}

// RenderDenied writes the 403 "access denied" page for r.
func (a *Authn) RenderDenied(w http.ResponseWriter, r *http.Request, d DeniedPage) {
	pd := PageData{Title: "Access denied", App: d.App, RequestID: d.RequestID}
	if d.Identity.Authenticated() {
		pd.User = userLabel(d.Identity.Email, d.Identity.Subject)
		pd.LogoutURL = a.LogoutURL(requestHost(r))
	}
	a.pages.render(w, http.StatusForbidden, "denied", pd)
}
