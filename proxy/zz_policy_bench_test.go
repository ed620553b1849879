package proxy

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
)

// BenchmarkPolicyStageMemo is one decision through the adapter (input from
// an HTTP request, the cookbook policy, the audit input map), with the
// decision memo off and on. Request ids and clocks differ per request, as
// in production; the fields the cookbook reads repeat.
func BenchmarkPolicyStageMemo(b *testing.B) {
	for _, memo := range []bool{false, true} {
		b.Run(fmt.Sprintf("memo=%v", memo), func(b *testing.B) {
			cfg := baseConfig("http://127.0.0.1:1")
			cfg.Policy = config.Policy{Dir: "../examples/policies", Timeout: config.Duration(time.Second), DecisionCache: &memo}
			w := &Wiring{Config: cfg}
			if err := buildPolicy(context.Background(), w); err != nil {
				b.Fatal(err)
			}
			st := w.Authz.(*policyStage)
			defer func() { _ = st.engine.Load().Close() }()
			hr := httptest.NewRequest("GET", "https://files.example.com/docs/a.txt", nil)
			hr.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36")
			hr.Header.Set("Accept", "text/html,application/xhtml+xml")
			hr.Header.Set("Accept-Language", "en-US,en;q=0.9")
			id := Identity{Subject: "u1", Email: "ana@example.com", Groups: []string{"finance", "staff"}, MFA: true, AMR: []string{"pwd", "otp"}, AuthTime: time.Now()}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				req := &Request{ID: fmt.Sprint(i), Route: RouteInfo{Name: "files", Host: "files.example.com", MFA: "optional"}, Path: "/docs/a.txt",
					ClientIP: netip.MustParseAddr("10.0.0.7"), Time: time.Now(), HTTP: hr}
				d, _ := st.Decide(context.Background(), req, id, Risk{})
				if !d.Allow {
					b.Fatal(d.Deny)
				}
			}
			if memo && st.memoStats().Hits == 0 {
				b.Fatal("no memo hit")
			}
		})
	}
}
