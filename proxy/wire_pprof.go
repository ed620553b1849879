package proxy

import (
	"context"
	"net/http"
	"net/http/pprof"
)

// The Go profiler is on the admin API, behind the admin token like the rest
// of it (never on the public listener): operators profile a live proxy with
//
//	go tool pprof -http : -H "Authorization: Bearer $TOKEN" http://127.0.0.1:9090/api/v1/debug/pprof/profile
func init() {
	RegisterBuilder("pprof", 5, func(_ context.Context, w *Wiring) error {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		w.HandleAdmin("/api/v1/debug/pprof/", http.StripPrefix("/api/v1", mux))
		return nil
	})
}
