package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/authn"
)

// TestForwardAuthObserved: an allowed forward-auth request is counted for
// anomaly detection when it is judged (Gatehouse sees no response behind
// nginx), a path matching downloads.paths as a download; a denied one is
// not counted.
func TestForwardAuthObserved(t *testing.T) {
	cfg := baseConfig("http://127.0.0.1:1")
	obs := &fakeObserver{}
	authz := allowAll()
	st := &authnStage{w: &Wiring{Config: cfg, Authz: authz, Recorder: &fakeRecorder{}, Observers: []Observer{obs}, Clock: time.Now}}
	router, err := NewRouter(cfg.Routes)
	if err != nil {
		t.Fatal(err)
	}
	ask := func(path string) authn.Verdict {
		r := httptest.NewRequest(http.MethodGet, "https://files.example.com"+path, nil)
		r.RemoteAddr = "127.0.0.1:5000"
		v, err := st.authorize(context.Background(), r, authn.Route{Name: "files", Host: "files.example.com"},
			authn.Identity{Subject: "ana", SessionID: "s1", MFA: true}, nil, router)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := ask("/reports/q3.pdf"); !v.Allow {
		t.Fatalf("verdict %+v", v)
	}
	ask("/index.html")
	cs := obs.all()
	if len(cs) != 2 || !cs[0].Download || cs[1].Download || cs[0].Identity.Subject != "ana" || cs[0].Request.Path != "/reports/q3.pdf" {
		t.Fatalf("observed %+v", cs)
	}
	authz.dec = Decision{Allow: false, Revision: "rev1"}
	if v := ask("/x"); v.Allow {
		t.Fatal("denied request allowed")
	}
	if len(obs.all()) != 2 {
		t.Fatal("a denied forward-auth request was counted")
	}
}
