package authn

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// TestLogoutRefusedWhenNotRecorded: a logout whose audit record cannot be
// written is refused (503) instead of reported done: a memory-store
// instance replays revocations from that log at start, so an unrecorded
// logout would be undone by a restart.
func TestLogoutRefusedWhenNotRecorded(t *testing.T) {
	rg, f := fakeRig(t, func(o *Options) {
		o.Events = func(_ context.Context, ev Event) error {
			if ev.Type == EventLogout {
				return errTestAudit
			}
			return nil
		}
	})
	rg.get("http://chat.test/")
	p := rg.get("http://chat.test/.gatehouse/logout")
	form, ok := p.FormWith("csrf")
	if !ok {
		t.Fatalf("no logout form: %s", p.Body)
	}
	rg.b.Visited()
	res, err := rg.b.Submit(p, form, nil)
	if err != nil {
		t.Fatal(err)
	}
	visited := strings.Join(rg.b.Visited(), "\n")
	if strings.Contains(visited, f.srv.URL+"/logout") || strings.Contains(visited, PathSignedOut) || strings.Contains(visited, PathLogoutDone) {
		t.Errorf("unrecorded logout reported done; browser went:\n%s", visited)
	}
	if res.Status != http.StatusServiceUnavailable {
		t.Errorf("unrecorded logout: status %d, want 503", res.Status)
	}
}

// TestStepUpRecordsSupersededSessionRevocation: the session a step-up
// supersedes is revoked with a session_revoked record of its own, which
// the start-up replay of a memory store reads.
func TestStepUpRecordsSupersededSessionRevocation(t *testing.T) {
	rg, f := fakeRig(t, nil)
	base := f.claims
	f.setClaims(func(n string) map[string]any {
		c := base(n)
		c["amr"] = []string{"pwd"}
		return c
	})
	rg.get("http://chat.test/")
	oldSID := rg.eventsOf(EventLogin)[0].SessionID
	f.setClaims(base)
	if p := rg.get("http://admin.test/"); p.Status != http.StatusOK {
		t.Fatalf("step-up: %d %s", p.Status, p.Body)
	}
	logins := rg.eventsOf(EventLogin)
	newSID := logins[len(logins)-1].SessionID
	var found bool
	for _, ev := range rg.eventsOf(EventSessionRevoked) {
		if ev.SessionID == oldSID {
			found = true
			if ev.Outcome != "ok" || ev.Reason == "" {
				t.Errorf("revocation of the superseded session: %+v", ev)
			}
		}
		if ev.SessionID == newSID {
			t.Errorf("the new session was recorded as revoked: %+v", ev)
		}
	}
	if !found {
		t.Errorf("no session_revoked event for the superseded session %s: %+v", oldSID, rg.eventsOf(EventSessionRevoked))
	}
}

// TestStepUpRefusedWhenRevocationNotRecorded: a step-up whose revocation of
// the superseded session cannot be recorded is refused like an unrecorded
// login.
func TestStepUpRefusedWhenRevocationNotRecorded(t *testing.T) {
	rg, f := fakeRig(t, func(o *Options) {
		o.Events = func(_ context.Context, ev Event) error {
			if ev.Type == EventSessionRevoked {
				return errTestAudit
			}
			return nil
		}
	})
	base := f.claims
	f.setClaims(func(n string) map[string]any {
		c := base(n)
		c["amr"] = []string{"pwd"}
		return c
	})
	rg.get("http://chat.test/")
	f.setClaims(base)
	if p := rg.get("http://admin.test/"); p.Status != http.StatusServiceUnavailable {
		t.Errorf("step-up with its revocation unrecorded: %d, want 503", p.Status)
	}
}

// TestLogoutRetriedAfterUnrecordedLogout: the session is already revoked
// when the logout record fails; submitting the form again records the
// logout and completes it.
func TestLogoutRetriedAfterUnrecordedLogout(t *testing.T) {
	var failed bool
	rg, f := fakeRig(t, func(o *Options) {
		o.Events = func(_ context.Context, ev Event) error {
			if ev.Type == EventLogout && !failed {
				failed = true
				return errTestAudit
			}
			return nil
		}
	})
	rg.get("http://chat.test/")
	p := rg.get("http://chat.test/.gatehouse/logout")
	form, ok := p.FormWith("csrf")
	if !ok {
		t.Fatal("no logout form")
	}
	if res, err := rg.b.Submit(p, form, nil); err != nil || res.Status != http.StatusServiceUnavailable {
		t.Fatalf("first, unrecorded sign-out: %v %+v", err, res)
	}
	rg.b.Visited()
	if _, err := rg.b.Submit(p, form, nil); err != nil {
		t.Fatal(err)
	}
	if lo := rg.eventsOf(EventLogout); len(lo) != 2 {
		t.Errorf("logout events %d, want 2 (the failed one and the retry)", len(lo))
	}
	if v := strings.Join(rg.b.Visited(), "\n"); !strings.Contains(v, f.srv.URL+"/logout") {
		t.Errorf("retried sign-out did not continue to the IdP:\n%s", v)
	}
}
