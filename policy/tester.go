package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestOptions configure [RunTests] (`gatehouse policy test`).
type TestOptions struct {
	Paths   []string  // directories or files, as for `opa test`
	Run     string    // only tests whose name matches this regex
	Verbose bool      // print every test, as `opa test -v`
	Out     io.Writer // where the report goes
	// Coverage measures coverage of the loaded modules; Threshold (0-100,
	// implies Coverage) makes the run fail below that percentage.
	Coverage  bool
	Threshold float64
	Timeout   time.Duration // per test (5s when zero)
}

// TestSummary is the outcome of [RunTests].
type TestSummary struct {
	Pass, Fail, Errors, Skip int
	Coverage                 float64 // percent; only with Coverage
	// NotCovered lists "file:row-row" ranges left uncovered.
	NotCovered []string
}

// ErrCoverageBelow means the run passed but coverage is under the threshold.
var ErrCoverageBelow = errors.New("coverage below threshold")

// RunTests loads the paths with OPA's tester (Rego v1, the same filter and
// capabilities as serving), runs the tests with OPA's runner and prints
// them with OPA's PrettyReporter. The error is non-nil when a test fails
// or errors, when no test ran, or when coverage is below the threshold.
func RunTests(ctx context.Context, opts TestOptions) (TestSummary, error) {
	var sum TestSummary
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.Threshold < 0 || opts.Threshold > 100 {
		return sum, fmt.Errorf("coverage threshold %v: must be between 0 and 100", opts.Threshold)
	}
	if opts.Threshold > 0 {
		opts.Coverage = true
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	modules, store, err := tester.LoadWithParserOptions(opts.Paths, Filter, ast.ParserOptions{
		RegoVersion: ast.RegoV1, ProcessAnnotation: true, Capabilities: Capabilities(),
	})
	if err != nil {
		return sum, fmt.Errorf("load policies: %w", err)
	}
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		return sum, fmt.Errorf("load policies: %w", err)
	}
	defer store.Abort(ctx, txn)

	var cov *cover.Cover
	runner := tester.NewRunner().
		SetCompiler(testCompiler()).
		SetStore(store).
		SetModules(modules).
		RaiseBuiltinErrors(true).
		CapturePrintOutput(true).
		EnableTracing(opts.Verbose).
		SetTimeout(opts.Timeout).
		Filter(opts.Run)
	if opts.Coverage {
		cov = cover.New()
		runner = runner.SetCoverageQueryTracer(cov)
	}
	ch, err := runner.RunTests(ctx, txn)
	if err != nil {
		return sum, fmt.Errorf("run policy tests: %w", err)
	}
	tee := make(chan *tester.Result)
	go func() {
		defer close(tee)
		for r := range ch {
			switch {
			case r.Skip:
				sum.Skip++
			case r.Error != nil:
				sum.Errors++
			case r.Fail:
				sum.Fail++
			default:
				sum.Pass++
			}
			tee <- r
		}
	}()
	if err := (tester.PrettyReporter{Output: opts.Out, Verbose: opts.Verbose}).Report(tee); err != nil {
		return sum, fmt.Errorf("report: %w", err)
	}
	if sum.Fail+sum.Errors > 0 {
		return sum, fmt.Errorf("%w: %d failed, %d errors", ErrTestsFailed, sum.Fail, sum.Errors)
	}
	if sum.Pass == 0 {
		return sum, fmt.Errorf("%w: no tests ran", ErrTestsFailed)
	}
	if cov != nil {
		rep := cov.Report(modules)
		sum.Coverage = rep.Coverage
		files := make([]string, 0, len(rep.Files))
		for f := range rep.Files {
			files = append(files, f)
		}
		sort.Strings(files)
		for _, f := range files {
			for _, r := range rep.Files[f].NotCovered {
				sum.NotCovered = append(sum.NotCovered, fmt.Sprintf("%s:%d-%d", f, r.Start.Row, r.End.Row))
			}
		}
		fmt.Fprintf(opts.Out, "Coverage: %.2f%%\n", rep.Coverage)
		for _, nc := range sum.NotCovered {
			fmt.Fprintf(opts.Out, "  not covered: %s\n", nc)
		}
		if rep.Coverage < opts.Threshold {
			return sum, fmt.Errorf("%w: %.2f%% < %.2f%%", ErrCoverageBelow, rep.Coverage, opts.Threshold)
		}
	}
	return sum, nil
}
