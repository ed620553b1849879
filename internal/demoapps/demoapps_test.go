package demoapps

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestApps(t *testing.T) {
	tests := []struct {
		app, path, want string
		size            int64
	}{
		{"chat", "/", "welcome to the demo chat", -1},
		{"files", "/", "report-80.pdf", -1},
		{"files", "/files/report-01.pdf?size=1000", "", 1000},
		{"wiki", "/", "Onboarding", -1},
	}
	for _, tt := range tests {
		t.Run(tt.app+tt.path, func(t *testing.T) {
			a, err := Start(context.Background(), tt.app)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			req, _ := http.NewRequest("GET", a.URL+tt.path, nil)
			req.Header.Set("X-Gatehouse-Email", "ana@example.com")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if tt.size >= 0 {
				if int64(len(body)) != tt.size || !strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
					t.Fatalf("download: %d bytes, disposition %q", len(body), resp.Header.Get("Content-Disposition"))
				}
				return
			}
			if !strings.Contains(string(body), tt.want) || !strings.Contains(string(body), "ana@example.com") {
				t.Fatalf("body lacks %q or the identity: %s", tt.want, body)
			}
		})
	}
	if _, err := Handler("nope"); err == nil {
		t.Fatal("unknown app accepted")
	}
}
