package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminHandler serves the admin listener: /healthz (the process is alive),
// /readyz (every readiness check passes), /metrics (prometheus), and the
// admin API under /api/ behind "Authorization: Bearer <admin token>". It is
// never mounted on the public listener.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.handleReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{Registry: s.registry}))
	mux.Handle("/api/", s.requireAdmin(s.wiring.adminMux))
	return mux
}

// readiness lists the checks /readyz runs: the proxy's own, then those the
// builders added.
func (s *Server) readiness() []readinessCheck {
	own := []readinessCheck{
		{"config", func(context.Context) error {
			if s.state.Load() == nil {
				return errNotReady("no config loaded")
			}
			return nil
		}},
		{"builders", func(context.Context) error {
			if !s.built.Load() {
				return errNotReady("builders not done")
			}
			return nil
		}},
		{"listeners", func(context.Context) error {
			if !s.bound.Load() {
				return errNotReady("listeners not bound")
			}
			return nil
		}},
	}
	if rc, ok := s.certs.(interface{ Ready(context.Context) error }); ok {
		own = append(own, readinessCheck{"tls", rc.Ready})
	}
	return append(own, s.wiring.readiness...)
}

type errNotReady string

func (e errNotReady) Error() string { return string(e) }

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	checks := map[string]string{}
	ready := true
	for _, c := range s.readiness() {
		if err := c.check(ctx); err != nil {
			ready = false
			checks[c.name] = err.Error()
			continue
		}
		checks[c.name] = "ok"
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"ready": ready, "checks": checks})
}

// requireAdmin lets a request through only with the admin bearer token.
// Without a configured token the admin API refuses everything.
func (s *Server) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := s.state.Load().adminToken
		if len(tok) == 0 {
			writeJSON(w, http.StatusForbidden, map[string]any{"error": "admin API disabled: no admin_token configured"})
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !tokenEqual([]byte(strings.TrimSpace(got)), tok) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse-admin"`)
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "missing or wrong admin token"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// tokenEqual compares in constant time, also hiding the token's length.
func tokenEqual(got, want []byte) bool {
	a, b := sha256.Sum256(got), sha256.Sum256(want)
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

func (s *Server) handleReload(w http.ResponseWriter, r *http.Request) {
	gen, err := s.Reload(r.Context())
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"ok": false, "error": err.Error(), "generation": gen})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "generation": gen})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
