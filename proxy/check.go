package proxy

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/gatehouse-dev/gatehouse/config"
)

// Checker is an extra validation `gatehouse check` runs on a loaded config
// (e.g. policy compiles and its tests pass). It must not start anything.
type Checker func(ctx context.Context, cfg *config.Config) error

type checkerEntry struct {
	name  string
	check Checker
}

var (
	checkersMu sync.Mutex
	checkers   []checkerEntry
)

// RegisterChecker adds a check to Check; called from init in wire_<pkg>.go.
func RegisterChecker(name string, c Checker) {
	checkersMu.Lock()
	defer checkersMu.Unlock()
	checkers = append(checkers, checkerEntry{name, c})
}

// Check validates what the proxy itself compiles from a config (routes,
// trusted proxies, admin token), then runs every registered Checker. It
// reports all problems, joined; each checker's are prefixed with its name.
func Check(ctx context.Context, cfg *config.Config) error {
	var errs []error
	if _, err := newState(cfg, 0); err != nil {
		errs = append(errs, withLines(cfg, err)...)
	}
	checkersMu.Lock()
	list := append([]checkerEntry(nil), checkers...)
	checkersMu.Unlock()
	for _, c := range list {
		err := c.check(ctx, cfg)
		if err == nil {
			continue
		}
		// Problems that know their file and line print as they are
		// (file:line: field: message); others are prefixed with the check.
		leaves := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			leaves = j.Unwrap()
		}
		for _, e := range leaves {
			if fe := (*config.FieldError)(nil); errors.As(e, &fe) && fe.Line > 0 {
				errs = append(errs, e)
			} else {
				errs = append(errs, fmt.Errorf("%s: %w", c.name, e))
			}
		}
	}
	return errors.Join(errs...)
}

// withLines turns the proxy's *FieldError values into *config.FieldError,
// with the file and line the field was written at.
func withLines(cfg *config.Config, err error) []error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var fe *FieldError
		if errors.As(e, &fe) {
			file, line := cfg.Line(fe.Field)
			out = append(out, &config.FieldError{File: file, Line: line, Field: fe.Field, Msg: fe.Msg, Err: fe.Err})
			return
		}
		out = append(out, e)
	}
	walk(err)
	return out
}
