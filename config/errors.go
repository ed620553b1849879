package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// FieldError is one problem in a config file: where it is and what is wrong.
// It prints as "file:line: field: message"; the parts that are unknown are
// left out (a config built in Go has no file, a YAML syntax error no field).
type FieldError struct {
	File  string // the config file as given to Load
	Line  int    // 1-based; 0 when unknown
	Field string // path such as routes[2].upstream; "" for syntax errors
	Msg   string
	Err   error // the underlying cause, if any (e.g. from os or strconv)
}

// Error formats the problem as "file:line: field: message".
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		b.WriteString("line " + strconv.Itoa(e.Line) + ": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *FieldError) Unwrap() error { return e.Err }

// Errors is every problem found in one config, sorted by file and line. It is
// what Load and Validate return; use errors.As to get at it, or at a single
// *FieldError.
type Errors []*FieldError

// Error prints one problem per line, sorted by line.
func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es.sorted() {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap lets errors.Is and errors.As see each *FieldError.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func (es Errors) sorted() Errors {
	out := append(Errors(nil), es...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Field < b.Field
	})
	return out
}

// errorList collects problems while decoding or validating.
type errorList struct {
	file  string
	lines map[string]int
	errs  Errors
}

// at records a problem with an explicit line.
func (l *errorList) at(line int, field, format string, args ...any) {
	l.errs = append(l.errs, &FieldError{File: l.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// wrap records a problem caused by err.
func (l *errorList) wrap(field string, err error, format string, args ...any) {
	l.errs = append(l.errs, &FieldError{File: l.file, Line: lineOf(l.lines, field), Field: field,
		Msg: fmt.Sprintf(format, args...), Err: err})
}

// add records a problem at the line of field (or its nearest written parent).
func (l *errorList) add(field, format string, args ...any) {
	l.at(lineOf(l.lines, field), field, format, args...)
}

// err returns nil or the sorted Errors.
func (l *errorList) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	return l.errs.sorted()
}

// lineOf returns the line of field, or of its nearest parent present in the
// file ("routes[2].upstream" -> "routes[2]" -> "routes"), or 0.
func lineOf(lines map[string]int, field string) int {
	for field != "" {
		if n, ok := lines[field]; ok {
			return n
		}
		field = parentPath(field)
	}
	return 0
}

// parentPath strips the last element of a field path.
func parentPath(field string) string {
	if strings.HasSuffix(field, "]") {
		if i := strings.LastIndexByte(field, '['); i >= 0 {
			return field[:i]
		}
	}
	if i := strings.LastIndexByte(field, '.'); i >= 0 {
		return field[:i]
	}
	return ""
}

// Line says where field (a path such as "routes[2].upstream") was written:
// the config file and the 1-based line of that key, or of its nearest parent
// present in the file. The line is 0 for fields that took their default.
func (c *Config) Line(field string) (file string, line int) {
	return c.Path, lineOf(c.lines, field)
}
