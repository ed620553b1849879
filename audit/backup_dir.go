package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/atomicfile"
)

// backupTmpDir holds DirTarget's files being written.
const backupTmpDir = ".incoming"

// DirTarget is a BackupTarget that is a directory (a mounted backup
// volume, NFS, an object store mounted with rclone or s3fs): the copy is
// laid out like the log, so `gatehouse audit verify --dir` checks it in
// place. Objects are written to a temporary file, fsynced and renamed:
// a reader sees the old copy or the new one.
type DirTarget struct{ Dir string }

func (t DirTarget) path(name string) (string, error) {
	clean := path.Clean(name)
	if clean != name || path.IsAbs(clean) || clean == "." || strings.HasPrefix(clean, "../") || clean == ".." {
		return "", fmt.Errorf("backup object name %q", name)
	}
	return filepath.Join(t.Dir, filepath.FromSlash(clean)), nil
}

// Size implements BackupTarget.
func (t DirTarget) Size(_ context.Context, name string) (int64, bool, error) {
	p, err := t.path(name)
	if err != nil {
		return 0, false, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return fi.Size(), true, nil
}

// Put implements BackupTarget.
func (t DirTarget) Put(ctx context.Context, name string, r io.Reader) error {
	p, err := t.path(name)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	// Temporary files live in their own folder: one left by a crash never
	// sits among the segments, where verify would refuse it.
	tmpDir := filepath.Join(t.Dir, backupTmpDir)
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return err
	}
	perm := os.FileMode(0o640)
	if strings.HasPrefix(name, keysDir+"/") {
		perm = 0o600 // wrapped data keys: as private as the originals
	}
	return atomicfile.WriteFrom(p, ctxReader{ctx, r}, perm, tmpDir)
}

// Create implements BackupTarget: the file is written whole under
// .incoming/ (a name of its own per call) and hard-linked into place,
// which fails if the name exists. Where hard links are not supported
// (some network or FUSE mounts), an exclusive create does the same.
func (t DirTarget) Create(_ context.Context, name string, data []byte) (bool, error) {
	p, err := t.path(name)
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return false, err
	}
	tmpDir := filepath.Join(t.Dir, backupTmpDir)
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return false, err
	}
	f, err := os.CreateTemp(tmpDir, filepath.Base(p)+".create.*")
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o640)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, err
	}
	lerr := os.Link(tmp, p)
	switch {
	case lerr == nil:
	case errors.Is(lerr, fs.ErrExist):
		return false, nil
	default:
		if ok, err := createExclusive(p, data); err != nil || !ok {
			return ok, err
		}
	}
	return true, syncDir(filepath.Dir(p))
}

// createExclusive writes data to p only if p does not exist.
func createExclusive(p string, data []byte) (bool, error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p)
		return false, err
	}
	return true, nil
}

// Clean removes files a crashed upload left half-written.
func (t DirTarget) Clean() error {
	err := os.RemoveAll(filepath.Join(t.Dir, backupTmpDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Delete implements BackupTarget. The content is overwritten with zeros
// and synced before the name goes, as Shred does with the original key.
func (t DirTarget) Delete(_ context.Context, name string) error {
	p, err := t.path(name)
	if err != nil {
		return err
	}
	// Lstat: a symbolic link is removed, never followed and zeroed.
	if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
		if f, err := os.OpenFile(p, os.O_WRONLY, 0); err == nil {
			_, werr := f.Write(make([]byte, fi.Size()))
			serr := f.Sync()
			f.Close()
			if werr != nil || serr != nil {
				return errors.Join(werr, serr)
			}
		}
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(filepath.Dir(p))
}

// Read implements BackupTarget.
func (t DirTarget) Read(_ context.Context, name string) ([]byte, bool, error) {
	p, err := t.path(name)
	if err != nil {
		return nil, false, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// List implements BackupTarget: the files directly under the folder
// prefix names ("keys/"), temporary files left out.
func (t DirTarget) List(_ context.Context, prefix string) ([]string, error) {
	folder := strings.TrimSuffix(prefix, "/")
	p, err := t.path(folder)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, path.Join(folder, e.Name()))
		}
	}
	return out, nil
}

// ctxReader stops a long copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
