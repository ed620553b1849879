package policy

import (
	"context"
	"slices"
	"testing"
)

// TestDecideInputReusesOneInput: one Input refilled for request after
// request (as the proxy's pool does) gets each request's own decision,
// memo hits included, the same as Decide's copy would.
func TestDecideInputReusesOneInput(t *testing.T) {
	e, err := New(context.Background(), Options{Dir: cookbookDir, Timeout: testTimeout})
	if err != nil || e.Ready() != nil {
		t.Fatal(err, e.Ready())
	}
	defer e.Close()
	ctx := context.Background()
	cases := []func(*Input){
		func(*Input) {},
		func(in *Input) { in.User.Groups = []string{"engineering"} },
		func(in *Input) { in.Risk.Blocked = true },
		func(in *Input) { in.Request.Path = "/s/report.pdf"; in.Time.Night = true },
	}
	var reused Input
	for round := range 3 { // rounds 2 and 3 are memo hits
		for i, mutate := range cases {
			want := cookbookInput()
			mutate(&want)
			dw, errw := e.Decide(ctx, want)
			reused = cookbookInput()
			mutate(&reused)
			dr, errr := e.DecideInput(ctx, &reused)
			if dr.Outcome != dw.Outcome || !slices.Equal(dr.Reasons, dw.Reasons) || (errr == nil) != (errw == nil) {
				t.Errorf("round %d case %d: DecideInput %s %v %v, Decide %s %v %v", round, i, dr.Outcome, dr.Reasons, errr, dw.Outcome, dw.Reasons, errw)
			}
			reused = Input{} // what the proxy's pool does between requests
		}
	}
}
