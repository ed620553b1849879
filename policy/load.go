package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// Package is the Rego package the engine evaluates.
const Package = "gatehouse.authz"

// Limits on what a policy directory may hold.
const (
	maxPolicyBytes = 64 << 20
	maxDepth       = 16
)

// ErrNoPackage means no served module declares package gatehouse.authz.
var ErrNoPackage = errors.New("no module declares package " + Package)

// ErrTestsFailed means the set's own *_test.rego tests did not pass.
var ErrTestsFailed = errors.New("policy tests failed")

// deniedBuiltins are removed from the capabilities of served policies: a
// per-request policy must not reach the network.
var deniedBuiltins = map[string]bool{"http.send": true, "net.lookup_ip_addr": true}

// Capabilities returns the OPA capabilities Gatehouse policies compile
// with: this OPA version minus network builtins.
func Capabilities() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	kept := c.Builtins[:0]
	for _, b := range c.Builtins {
		if !deniedBuiltins[b.Name] {
			kept = append(kept, b)
		}
	}
	c.Builtins = kept
	return c
}

// isTestFile reports whether a Rego file holds tests (never served).
func isTestFile(name string) bool { return strings.HasSuffix(name, "_test.rego") }

// wanted reports whether a file belongs to a policy set.
func wanted(name string) bool {
	if strings.HasSuffix(name, ".rego") {
		return true
	}
	switch name {
	case "data.json", "data.yaml", "data.yml":
		return true
	}
	return false
}

// Filter is the loader filter of a policy directory (true = skip): hidden
// files and directories (editor swap files, Kubernetes' ..data), and
// anything that is neither Rego nor a data.json/data.yaml file. It is used
// both by the engine and by `gatehouse policy test`.
func Filter(_ string, info fs.FileInfo, depth int) bool {
	name := info.Name()
	if depth > 0 && strings.HasPrefix(name, ".") {
		return true
	}
	if info.IsDir() {
		return false
	}
	return !wanted(name)
}

// snapshot is every wanted file of a directory, read once.
type snapshot struct {
	files map[string][]byte // slash path relative to the dir
	size  int64
}

func readSnapshot(dir string) (*snapshot, error) {
	s := &snapshot{files: map[string][]byte{}}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("read policy dir: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("read policy dir %s: not a directory", dir)
	}
	if err := s.walk(dir, "", 0); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *snapshot) walk(root, rel string, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("read policy dir %s: nested deeper than %d", root, maxDepth)
	}
	ents, err := os.ReadDir(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		return fmt.Errorf("read policy dir: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		p := path.Join(rel, name)
		full := filepath.Join(root, filepath.FromSlash(p))
		info, err := os.Stat(full) // follows symlinks (ConfigMap mounts)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // removed while we read
				continue
			}
			return fmt.Errorf("read policy file: %w", err)
		}
		if info.IsDir() {
			if err := s.walk(root, p, depth+1); err != nil {
				return err
			}
			continue
		}
		if !info.Mode().IsRegular() || !wanted(name) {
			continue
		}
		s.size += info.Size()
		if s.size > maxPolicyBytes {
			return fmt.Errorf("read policy dir %s: more than %d bytes", root, maxPolicyBytes)
		}
		b, err := os.ReadFile(full)
		if err != nil {
			return fmt.Errorf("read policy file: %w", err)
		}
		s.files[p] = b
	}
	return nil
}

// revision is a content hash of the served files (tests excluded).
func (s *snapshot) revision() string {
	names := make([]string, 0, len(s.files))
	for n := range s.files {
		if !isTestFile(n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(s.files[n]))
		h.Write(s.files[n])
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func (s *snapshot) hasTests() bool {
	for n := range s.files {
		if isTestFile(n) {
			return true
		}
	}
	return false
}

// load parses the snapshot with OPA's loader (Rego v1, annotations), so
// data files are mounted exactly as `opa test DIR` mounts them.
func (s *snapshot) load() (*loader.Result, error) {
	fsys := fstest.MapFS{}
	for n, b := range s.files {
		fsys[n] = &fstest.MapFile{Data: b, Mode: 0o644, ModTime: time.Unix(0, 0)}
	}
	if len(fsys) == 0 {
		return nil, ErrNoPackage
	}
	res, err := loader.NewFileLoader().
		WithFS(fsys).
		WithRegoVersion(ast.RegoV1).
		WithProcessAnnotation(true).
		WithCapabilities(Capabilities()).
		Filtered([]string{"."}, Filter)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// runSetTests runs the set's own tests with OPA's tester and returns an
// error naming every failing test (file:line).
func runSetTests(ctx context.Context, modules map[string]*ast.Module, store storage.Store, timeout time.Duration) error {
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return fmt.Errorf("run policy tests: %w", err)
	}
	defer store.Abort(ctx, txn)
	runner := tester.NewRunner().
		SetCompiler(testCompiler()).
		SetStore(store).
		SetModules(modules).
		RaiseBuiltinErrors(true).
		SetTimeout(timeout)
	ch, err := runner.RunTests(ctx, txn)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrTestsFailed, err)
	}
	var fails []string
	n := 0
	for r := range ch {
		n++
		if r.Pass() || r.Skip {
			continue
		}
		where := r.Package + "." + r.Name
		if r.Location != nil {
			where = fmt.Sprintf("%s:%d: %s", r.Location.File, r.Location.Row, where)
		}
		if r.Error != nil {
			where += ": " + r.Error.Error()
		} else {
			where += ": FAIL"
		}
		fails = append(fails, where)
	}
	if len(fails) > 0 {
		sort.Strings(fails)
		return fmt.Errorf("%w (%d of %d): %s", ErrTestsFailed, len(fails), n, strings.Join(fails, "; "))
	}
	return nil
}

// testCompiler is the compiler tests run with: the same strictness and
// capabilities as serving.
func testCompiler() *ast.Compiler {
	return ast.NewCompiler().
		WithStrict(true).
		WithCapabilities(Capabilities()).
		WithEnablePrintStatements(true).
		WithDefaultRegoVersion(ast.RegoV1)
}

// newStore makes the read-only data store of a set.
func newStore(docs map[string]any) storage.Store {
	if docs == nil {
		docs = map[string]any{}
	}
	return inmem.NewFromObjectWithOpts(docs, inmem.OptReturnASTValuesOnRead(true), inmem.OptRoundTripOnWrite(true))
}
