package proxy

import (
	"bytes"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden files")

// golden compares got with testdata/name, rewriting it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got\n%s", name, got)
	}
}

func TestPagesGolden(t *testing.T) {
	cases := []struct {
		name string
		d    pageData
	}{
		{"400.golden", pageData{Status: 400, Detail: "encoded_slash", RequestID: "0123456789abcdef0123456789abcdef", Host: "chat.example.com"}},
		{"403-signed-in.golden", pageData{Status: 403, RequestID: "0123456789abcdef0123456789abcdef", User: "ana@example.com", Host: "files.example.com"}},
		{"403-anonymous.golden", pageData{Status: 403, RequestID: "0123456789abcdef0123456789abcdef", Host: "files.example.com"}},
		{"404.golden", pageData{Status: 404, RequestID: "0123456789abcdef0123456789abcdef", Host: "<script>alert(1)</script>"}},
		{"502.golden", pageData{Status: 502, RequestID: "0123456789abcdef0123456789abcdef", Host: "wiki.example.com"}},
		{"503.golden", pageData{Status: 503, Detail: "the audit log cannot be written", RequestID: "0123456789abcdef0123456789abcdef", Host: "wiki.example.com"}},
	}
	for _, tc := range cases {
		got, err := pageHTML(tc.d)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, tc.name, got)
	}
}

func TestRenderPage(t *testing.T) {
	r := httptest.NewRequest("GET", "https://x/", nil)
	w := httptest.NewRecorder()
	renderPage(w, r, pageData{Status: 403, RequestID: "rid", User: "bob"})
	if w.Code != 403 || !strings.Contains(w.Body.String(), "bob") || !strings.Contains(w.Body.String(), "rid") ||
		w.Header().Get("Cache-Control") != "no-store" || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("bad page: %d %v %s", w.Code, w.Header(), w.Body)
	}
	r.Header.Set("Accept", "application/json")
	w = httptest.NewRecorder()
	renderPage(w, r, pageData{Status: 502, RequestID: "rid"})
	if w.Code != 502 || w.Header().Get("Content-Type") != "application/json" || !strings.Contains(w.Body.String(), `"request_id":"rid"`) {
		t.Fatalf("bad json page: %d %v %s", w.Code, w.Header(), w.Body)
	}
	w = httptest.NewRecorder()
	renderPage(w, nil, pageData{Status: http.StatusTeapot})
	if w.Code != 503 {
		t.Fatalf("unknown status should become 503, got %d", w.Code)
	}
}
