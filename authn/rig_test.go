package authn

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse-dev/gatehouse/internal/idp"
)

// Test hosts: the central host and three route hosts, all served by one
// httptest server that the test browser dials for every *.test name.
const (
	centralHost = "gate.test"
	chatHost    = "chat.test"
	filesHost   = "files.test"
	adminHost   = "admin.test" // mfa: required
)

var testRoutes = map[string]Route{
	chatHost:      {Name: "chat", Host: chatHost},
	filesHost:     {Name: "files", Host: filesHost},
	adminHost:     {Name: "admin", Host: adminHost, MFARequired: true},
	"public.test": {Name: "public", Host: "public.test", Public: true},
}

// rig is Gatehouse's authn in front of a tiny app, on one test server.
type rig struct {
	t      *testing.T
	a      *Authn
	srv    *httptest.Server
	b      *idp.Browser
	mu     sync.Mutex
	events []Event
}

func testKey(n byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = n + byte(i)
	}
	return k
}

// baseOptions are Options for issuer with the test hosts.
func baseOptions(issuer, clientID, secret string) Options {
	return Options{
		Issuer:       issuer,
		ClientID:     clientID,
		ClientSecret: secret,
		Scopes:       []string{"openid", "email", "profile", "groups"},
		ExternalURL:  "http://" + centralHost,
		Hosts:        []string{chatHost, filesHost, adminHost, "public.test"},
		MFA:          MFAOptions{AMRAny: []string{"otp", "mfa"}, ACRAny: []string{idp.MFAACR}, StepUpACR: idp.MFAACR, MaxAge: 12 * time.Hour},
		Session:      SessionOptions{Keys: [][]byte{testKey(1)}},
		RouteFor: func(host, _ string) (Route, bool) {
			r, ok := testRoutes[host]
			return r, ok
		},
	}
}

func newRig(t *testing.T, o Options) *rig {
	t.Helper()
	rg := &rig{t: t}
	prev := o.Events
	o.Events = func(ctx context.Context, ev Event) error {
		rg.mu.Lock()
		rg.events = append(rg.events, ev)
		rg.mu.Unlock()
		if prev != nil {
			return prev(ctx, ev)
		}
		return nil
	}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	rg.a = a
	gh := a.Handler()
	rg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/.gatehouse/") {
			gh.ServeHTTP(w, r)
			return
		}
		host := strings.ToLower(r.Host)
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		route, ok := testRoutes[host]
		if !ok {
			http.Error(w, "no route", http.StatusNotFound)
			return
		}
		id, handled, err := a.Authenticate(w, r, route)
		if err != nil {
			http.Error(w, "session state unavailable", http.StatusServiceUnavailable)
			return
		}
		if handled {
			return
		}
		h := http.Header{}
		if err := a.UpstreamHeaders(route.Name, id, h); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "hello %s route=%s mfa=%v sid=%s email=%s groups=%s roles=%s\n", id.Subject, route.Name, id.MFA, id.SessionID,
			h.Get("X-Gatehouse-Email"), h.Get("X-Gatehouse-Groups"), h.Get("X-Gatehouse-Roles"))
	}))
	t.Cleanup(rg.srv.Close)
	addr := rg.srv.Listener.Addr().String()
	rg.b = idp.NewBrowser(map[string]string{centralHost: addr, chatHost: addr, filesHost: addr, adminHost: addr, "public.test": addr})
	return rg
}

func (rg *rig) eventsOf(typ string) []Event {
	rg.mu.Lock()
	defer rg.mu.Unlock()
	var out []Event
	for _, e := range rg.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func (rg *rig) get(u string) *idp.Page {
	rg.t.Helper()
	p, err := rg.b.Get(u)
	if err != nil {
		rg.t.Fatalf("GET %s: %v", u, err)
	}
	return p
}

// fakeOP is an in-process OpenID Provider whose tokens a test shapes, for
// the error paths a real IdP never takes.
type fakeOP struct {
	srv *httptest.Server
	key *rsa.PrivateKey

	mu     sync.Mutex
	codes  map[string]fakeGrant
	last   url.Values // last authorize request
	claims func(nonce string) map[string]any
	// sign signs claims; default RS256 with key.
	sign func(claims map[string]any) string
	// atHash overrides the at_hash claim ("" leaves it computed).
	atHash string
}

type fakeGrant struct {
	nonce, challenge, redirect string
}

func newFakeOP(t *testing.T) *fakeOP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeOP{key: key, codes: map[string]fakeGrant{}}
	mux := http.NewServeMux()
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	iss := f.srv.URL
	f.claims = func(nonce string) map[string]any {
		now := time.Now()
		return map[string]any{
			"iss": iss, "aud": "gatehouse", "sub": "user-1", "nonce": nonce,
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "auth_time": now.Unix(),
			"email": "ana@example.com", "groups": []string{"finance"}, "amr": []string{"pwd", "otp"},
			"realm_access": map[string]any{"roles": []string{"staff"}},
		}
	}
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": iss, "authorization_endpoint": iss + "/authorize", "token_endpoint": iss + "/token",
			"jwks_uri": iss + "/jwks", "userinfo_endpoint": iss + "/userinfo", "end_session_endpoint": iss + "/logout",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
			http.Error(w, "PKCE S256 required", 400)
			return
		}
		code := randomID(16)
		f.mu.Lock()
		f.last = q
		f.codes[code] = fakeGrant{nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri")}
		f.mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {code}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		f.mu.Lock()
		g, ok := f.codes[r.PostForm.Get("code")]
		delete(f.codes, r.PostForm.Get("code"))
		claimsFn, sign, atHash := f.claims, f.sign, f.atHash
		f.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
			http.Error(w, `{"error":"invalid_grant"}`, 400)
			return
		}
		at := randomID(16)
		c := claimsFn(g.nonce)
		h := sha256.Sum256([]byte(at))
		c["at_hash"] = base64.RawURLEncoding.EncodeToString(h[:16])
		if atHash != "" {
			c["at_hash"] = atHash
		}
		if sign == nil {
			sign = f.signRS256
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": 300, "id_token": sign(c)})
	})
	mux.HandleFunc("GET /userinfo", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"sub": "user-1"})
	})
	return f
}

func (f *fakeOP) signRS256(c map[string]any) string {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: f.key, KeyID: "k1"}}, nil)
	if err != nil {
		panic(err)
	}
	tok, err := jwt.Signed(s).Claims(c).Serialize()
	if err != nil {
		panic(err)
	}
	return tok
}

func (f *fakeOP) lastAuthorize() url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func (f *fakeOP) setClaims(fn func(nonce string) map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.claims = fn
}

// fakeRig is a rig signed in through a fakeOP.
func fakeRig(t *testing.T, mod func(*Options)) (*rig, *fakeOP) {
	t.Helper()
	f := newFakeOP(t)
	o := baseOptions(f.srv.URL, "gatehouse", "secret")
	o.MFA.StepUpACR = ""
	if mod != nil {
		mod(&o)
	}
	return newRig(t, o), f
}
