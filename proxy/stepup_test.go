package proxy

import "testing"

// An anomaly's step_up must ask for a fresh proof even when the session
// already has MFA; without it the action would do nothing for such users.
func TestAnomalyStepUpEvenWithMFA(t *testing.T) {
	up, got := echoUpstream(t, nil)
	for _, tc := range []struct {
		name       string
		risk       Risk
		wantStepUp bool
	}{
		{"anomaly step-up, session has MFA", Risk{StepUp: true, Reason: "unusual-volume"}, true},
		{"no anomaly, session has MFA", Risk{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			auth := &fakeAuth{id: alice}
			st := stages{auth: auth, risk: &fakeRisk{risk: tc.risk}, authz: allowAll(), rec: &fakeRecorder{}}
			_, front := newTestServer(t, baseConfig(up.URL), st)
			before := len(*got)
			resp, _ := get(t, front, "app.example.com", "/x", nil)
			if stepped := len(auth.stepUps) > 0; stepped != tc.wantStepUp {
				t.Fatalf("step-up = %v, want %v (status %d)", stepped, tc.wantStepUp, resp.StatusCode)
			}
			if reached := len(*got) > before; reached == tc.wantStepUp {
				t.Fatalf("upstream reached = %v with step-up %v", reached, tc.wantStepUp)
			}
		})
	}
}
