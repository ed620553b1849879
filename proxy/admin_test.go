package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// seriesValue reads one series from the server's registry.
func seriesValue(t *testing.T, s *Server, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}

func adminDo(t *testing.T, h http.Handler, method, path, token string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Body)
	return w.Code, string(b)
}

const goodToken = "0123456789abcdef-admin"

func TestAdminToken(t *testing.T) {
	cfg := baseConfig("http://127.0.0.1:1")
	cfg.AdminToken = goodToken
	var called int
	s, _ := newTestServer(t, cfg, stages{extra: func(w *Wiring) {
		w.HandleAdmin("GET /api/v1/thing", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { called++ }))
	}})
	h := s.AdminHandler()
	cases := []struct {
		token string
		want  int
	}{
		{"", http.StatusUnauthorized},
		{"wrong-token-wrong-token", http.StatusUnauthorized},
		{goodToken + "x", http.StatusUnauthorized},
		{goodToken[:len(goodToken)-1], http.StatusUnauthorized},
		{goodToken, http.StatusOK},
	}
	for _, tc := range cases {
		if code, body := adminDo(t, h, "GET", "/api/v1/thing", tc.token); code != tc.want {
			t.Errorf("token %q: %d %s, want %d", tc.token, code, body, tc.want)
		}
	}
	if called != 1 {
		t.Errorf("admin handler called %d times, want 1", called)
	}
	r := httptest.NewRequest("GET", "/api/v1/thing", nil)
	r.Header.Set("Authorization", "Basic "+goodToken)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") == "" {
		t.Errorf("basic auth: %d %v", w.Code, w.Header())
	}
}

func TestAdminWithoutTokenRefusesAPI(t *testing.T) {
	s, _ := newTestServer(t, baseConfig("http://127.0.0.1:1"), stages{})
	if code, _ := adminDo(t, s.AdminHandler(), "POST", "/api/v1/reload", "anything-long-enough"); code != http.StatusForbidden {
		t.Errorf("no token configured: %d, want 403", code)
	}
}

func TestAdminTokenTooShort(t *testing.T) {
	cfg := baseConfig("http://127.0.0.1:1")
	cfg.AdminToken = "short"
	_, err := New(context.Background(), cfg, Options{Builders: []Builder{}})
	if !errors.Is(err, ErrAdminToken) {
		t.Fatalf("New with a 5-byte token: %v", err)
	}
	if err := Check(context.Background(), cfg); !errors.Is(err, ErrAdminToken) {
		t.Fatalf("Check with a 5-byte token: %v", err)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	up, _ := echoUpstream(t, nil)
	var failing error = errors.New("idp discovery pending")
	s, front := newTestServer(t, baseConfig(up.URL), stages{auth: &fakeAuth{id: alice}, authz: allowAll(), rec: &fakeRecorder{},
		extra: func(w *Wiring) { w.AddReadiness("idp", func(context.Context) error { return failing }) }})
	h := s.AdminHandler()
	if code, body := adminDo(t, h, "GET", "/healthz", ""); code != 200 || body != "ok\n" {
		t.Errorf("healthz %d %q", code, body)
	}
	code, body := adminDo(t, h, "GET", "/readyz", "")
	if code != 503 || !strings.Contains(body, "idp discovery pending") || !strings.Contains(body, "listeners not bound") {
		t.Errorf("readyz before Run and with a failing check: %d %s", code, body)
	}
	s.bound.Store(true)
	failing = nil
	if code, body := adminDo(t, h, "GET", "/readyz", ""); code != 200 || !strings.Contains(body, `"ready":true`) {
		t.Errorf("readyz: %d %s", code, body)
	}
	get(t, front, "app.example.com", "/", nil)
	get(t, front, "nope.example.com", "/", nil)
	code, body = adminDo(t, h, "GET", "/metrics", "")
	for _, want := range []string{
		`gatehouse_requests_total{code="200",outcome="allow",route="app"} 1`,
		`gatehouse_requests_total{code="404",outcome="not_found",route=""} 1`,
		`gatehouse_request_duration_seconds_bucket{route="app"`,
		`gatehouse_config_reloads_total{result="failure"} 0`,
		`gatehouse_build_info{`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if code != 200 {
		t.Errorf("metrics %d", code)
	}
	// The admin endpoints are never on the public listener.
	for _, p := range []string{"/metrics", "/healthz", "/readyz", "/api/v1/reload"} {
		if resp, _ := get(t, front, "nope.example.com", p, nil); resp.StatusCode != 404 {
			t.Errorf("%s answered %d on the public listener", p, resp.StatusCode)
		}
	}
}
