package authn

import (
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestPagesGolden renders every page with fixed data and compares it with
// testdata/golden/<name>.html (go test -run TestPagesGolden -update).
func TestPagesGolden(t *testing.T) {
	o := baseOptions("https://idp.example", "gatehouse", "s")
	o.ExternalURL = "https://gate.example.com"
	o.Hosts = []string{"chat.example.com"}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	sess := &Session{ID: "sid", Subject: "u1", Email: "ana@example.com", Groups: []string{"finance", "staff"},
		AMR: []string{"pwd"}, AuthTime: time.Now().Unix(), Expires: time.Now().Add(time.Hour).Unix(), LastSeen: time.Now().Unix()}
	req := func() *http.Request { return httptest.NewRequest(http.MethodGet, "https://chat.example.com/x", nil) }
	cases := map[string]func(w http.ResponseWriter){
		"signin": func(w http.ResponseWriter) {
			a.renderSignIn(w, req(), http.StatusUnauthorized, Route{Name: "chat"}, "https://chat.example.com/.gatehouse/start?rd=https%3A%2F%2Fchat.example.com%2Fx", true)
		},
		"denied": func(w http.ResponseWriter) {
			a.RenderDenied(w, req(), DeniedPage{RequestID: "req-0123", App: "files", Identity: Identity{Subject: "u1", Email: "ana@example.com"}})
		},
		"denied_anonymous": func(w http.ResponseWriter) {
			a.RenderDenied(w, req(), DeniedPage{RequestID: "req-0124"})
		},
		"mfa_unavailable": func(w http.ResponseWriter) { a.renderMFAUnavailable(w, req(), Route{Name: "admin"}, sess) },
		"error": func(w http.ResponseWriter) {
			a.renderError(w, req(), 400, "This sign-in link has expired <b>really</b>.", "https://chat.example.com/")
		},
		"logout":           func(w http.ResponseWriter) { a.renderLogout(w, req(), sess, "csrf-token") },
		"signed_out":       func(w http.ResponseWriter) { a.renderSignedOut(w, req(), true) },
		"signed_out_here":  func(w http.ResponseWriter) { a.renderSignedOut(w, req(), false) },
		"status":           func(w http.ResponseWriter) { a.renderStatus(w, req(), sess) },
		"status_anonymous": func(w http.ResponseWriter) { a.renderStatus(w, req(), nil) },
	}
	for name, render := range cases {
		t.Run(name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			render(rec)
			body := rec.Body.String()
			if !strings.HasPrefix(body, "<!doctype html>") || strings.Contains(body, "<link") || strings.Contains(body, " src=") || strings.Contains(body, "@import") {
				t.Errorf("not a complete page or an external asset:\n%s", body)
			}
			if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("CSP %q", csp)
			}
			if strings.Contains(body, "<b>really</b>") {
				t.Error("message not escaped")
			}
			path := filepath.Join("testdata", "golden", name+".html")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if body != string(want) {
				t.Errorf("%s differs from %s; rerun with -update after checking:\n%s", name, path, body)
			}
		})
	}
}
