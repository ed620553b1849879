// Package atomicfile replaces files so that a reader (or a restart after
// a crash) sees either the old content or the new, never a torn mix: the
// data goes to a temporary file, is fsynced, renamed over the target, and
// the target's directory is fsynced so the rename is durable.
package atomicfile

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data, created with perm; the temporary file
// sits beside it.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return WriteFrom(path, bytes.NewReader(data), perm, "")
}

// WriteFrom replaces path with what r yields, created with perm. The
// temporary file is made in tmpDir ("" : path's directory; it must be on
// the same file system), so that one left by a crash can be kept apart
// from the files beside path. A failed read leaves path as it was.
func WriteFrom(path string, r io.Reader, perm os.FileMode, tmpDir string) error {
	dir := filepath.Dir(path)
	name := "." + filepath.Base(path) + ".tmp*"
	if tmpDir == "" {
		tmpDir = dir
	} else {
		name = filepath.Base(path) + ".*"
	}
	f, err := os.CreateTemp(tmpDir, name)
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
