package proxy

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestCheckQueryHonorsParamLimit: with GODEBUG=urlmaxqueryparams lowered
// (an operator's hardening against big queries), url.ParseQuery refuses a
// query past the limit and returns an empty map, so the policy's
// input.query (policy.QueryFromURL) would be empty while the upstream gets
// every parameter. CheckQuery must refuse such a query as ParseQuery does,
// whatever the limit.
func TestCheckQueryHonorsParamLimit(t *testing.T) {
	for _, tc := range []struct {
		godebug string
		raw     string
	}{
		{"urlmaxqueryparams=5", "a=1&b=2&c=3&d=4&admin=1"},
		{"urlmaxqueryparams=100", strings.Repeat("x=1&", 200) + "admin=1"},
		{"urlmaxqueryparams=0", strings.Repeat("x=1&", 12000)}, // 0: no limit
		{"", "a=1&b=2"},
		{"urlmaxqueryparams=1", "a=1"}, // 1 refuses every query, even one parameter
	} {
		t.Run(tc.godebug, func(t *testing.T) {
			t.Setenv("GODEBUG", tc.godebug)
			queryLimit.Reset()
			t.Cleanup(queryLimit.Reset) // the next test probes its own setting
			_, perr := url.ParseQuery(tc.raw)
			if err := CheckQuery(tc.raw); (err == nil) != (perr == nil) {
				t.Errorf("GODEBUG=%s: CheckQuery = %v, url.ParseQuery: %v", tc.godebug, err, perr)
			}
		})
	}
}

// TestCheckQueryEmptyUnderAnyLimit: no query is never ambiguous, even
// under a limit that makes ParseQuery refuse "" (urlmaxqueryparams=1), and
// is judged without asking the GODEBUG probe.
func TestCheckQueryEmptyUnderAnyLimit(t *testing.T) {
	t.Setenv("GODEBUG", "urlmaxqueryparams=1")
	queryLimit.Reset()
	t.Cleanup(queryLimit.Reset)
	if err := CheckQuery(""); err != nil {
		t.Errorf("CheckQuery(\"\") under urlmaxqueryparams=1: %v", err)
	}
	if err := CheckQuery("a=1"); err == nil {
		t.Error("CheckQuery(\"a=1\") under urlmaxqueryparams=1 accepted; ParseQuery refuses it")
	}
	if n := testing.AllocsPerRun(100, func() { _ = CheckQuery("") }); n != 0 {
		t.Errorf("CheckQuery(\"\"): %v allocations", n)
	}
}

// TestCheckQueryFastPathAllocs: the limit probe is cached, so judging a
// short query still allocates nothing.
func TestCheckQueryFastPathAllocs(t *testing.T) {
	_ = CheckQuery("a=1&b=2")
	if n := testing.AllocsPerRun(100, func() { _ = CheckQuery("a=1&b=%41") }); n != 0 {
		t.Errorf("CheckQuery of a short query: %v allocations", n)
	}
}

// TestQueryPastLoweredLimitRefused: end to end, under a lowered
// urlmaxqueryparams a query the policy would see as empty (ParseQuery's
// map past the limit) is refused, not judged on no parameters and sent on
// with all of them.
func TestQueryPastLoweredLimitRefused(t *testing.T) {
	dir := t.TempDir()
	writePolicyFile(t, dir, "authz.rego", "package gatehouse.authz\n\ndefault allow := false\n\nallow if not input.request.query.admin\n")
	_, front, _, _ := policyServer(t, dir, &fakeAuth{id: alice}, &fakeRecorder{})
	eventually(t, func() bool { // the policy compiles in the background
		resp, _ := get(t, front, "app.example.com", "/?x=1", nil)
		return resp.StatusCode == http.StatusOK
	})
	if resp, _ := get(t, front, "app.example.com", "/?admin=1", nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("?admin=1: %d, want the policy's 403", resp.StatusCode)
	}
	t.Setenv("GODEBUG", "urlmaxqueryparams=5")
	queryLimit.Reset()
	t.Cleanup(queryLimit.Reset)
	if resp, _ := get(t, front, "app.example.com", "/?a=1&b=2&c=3&d=4&admin=1", nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("5 parameters past urlmaxqueryparams=5: %d, want 400 (ambiguous query)", resp.StatusCode)
	}
}
