//go:build !unix

package audit

import "os"

// lockDir only makes sure dir exists where flock is not available: one
// writer per directory is then the operator's to ensure.
func lockDir(dir string) (*os.File, error) { return nil, os.MkdirAll(dir, 0o750) }
