// Package syncbuf is a text buffer that one goroutine may read while
// another writes to it: the output of a child process (os/exec copies it
// from its own goroutine) read for an error message before the process
// has ended.
package syncbuf

import (
	"strings"
	"sync"
)

// Builder is a strings.Builder guarded by a mutex.
type Builder struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p.
func (s *Builder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what has been written so far.
func (s *Builder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
