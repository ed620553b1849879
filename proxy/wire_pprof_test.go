package proxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestPprofOnAdminAPIOnly(t *testing.T) {
	w := &Wiring{mux: http.NewServeMux(), adminMux: http.NewServeMux()}
	for _, b := range builders {
		if b.name == "pprof" {
			if err := b.build(context.Background(), w); err != nil {
				t.Fatal(err)
			}
		}
	}
	rec := httptest.NewRecorder()
	w.adminMux.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/debug/pprof/goroutine?debug=1", nil))
	if rec.Code != 200 || rec.Body.Len() == 0 {
		t.Fatalf("admin pprof: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	w.mux.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pprof/", nil))
	if rec.Code == 200 {
		t.Fatal("pprof must not be on the public mux")
	}
}
