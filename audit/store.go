package audit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/gatehouse-dev/gatehouse/internal/atomicfile"
)

// On-disk layout of a log directory:
//
//	segments/<first index, 20 digits>.jsonl   records, one JSON line each
//	hashes                                    tlog stored hashes, 32 bytes each, in stored-hash-index order
//	checkpoints                               every signed checkpoint note, oldest first
//	checkpoint                                the latest signed checkpoint (replaced atomically)
//	key.pub                                   the verifier key of the signing key (untrusted copy)
//	lock                                      the writer's flock; holds its process id
//	keys/<period>.key                         wrapped data keys for encrypted personal fields
const (
	segmentsDir     = "segments"
	segmentExt      = ".jsonl"
	hashesFile      = "hashes"
	checkpointsFile = "checkpoints"
	latestFile      = "checkpoint"
	pubKeyFile      = "key.pub"
	keysDir         = "keys"
	lockFile        = "lock"
)

// maxLine bounds one record line; longer lines are refused on write and
// reported as corrupt on read.
const maxLine = 4 << 20

// segmentInfo is one segment file and the index of its first record.
type segmentInfo struct {
	Name  string // file name inside segments/
	Path  string
	Start int64
}

func segmentName(start int64) string { return fmt.Sprintf("%020d%s", start, segmentExt) }

// listSegments returns the segments of dir sorted by first index. Files that
// are not named like segments are reported as errors: nothing unexplained
// may sit among the records.
func listSegments(dir string) ([]segmentInfo, error) {
	ents, err := os.ReadDir(filepath.Join(dir, segmentsDir))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("list audit segments: %w", err)
	}
	var segs []segmentInfo
	for _, e := range ents {
		name := e.Name()
		base, ok := strings.CutSuffix(name, segmentExt)
		if !ok || len(base) != 20 {
			return nil, fmt.Errorf("list audit segments: unexpected file %s", name)
		}
		start, err := strconv.ParseInt(base, 10, 64)
		if err != nil || start < 0 {
			return nil, fmt.Errorf("list audit segments: unexpected file %s", name)
		}
		segs = append(segs, segmentInfo{Name: name, Path: filepath.Join(dir, segmentsDir, name), Start: start})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].Start < segs[j].Start })
	return segs, nil
}

// lineScanner reads a segment line by line, keeping the byte offset of each
// line and whether it ended with a newline.
type lineScanner struct {
	r      *bufio.Reader
	off    int64 // offset of the next line
	lineNo int
}

func newLineScanner(r io.Reader) *lineScanner {
	return &lineScanner{r: bufio.NewReaderSize(r, 256<<10)}
}

// next returns the next line without its newline. complete is false for a
// final line without a newline (a torn write). io.EOF at the end.
func (s *lineScanner) next() (line []byte, off int64, complete bool, err error) {
	off = s.off
	var buf []byte
	for {
		chunk, err := s.r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxLine {
			return nil, off, false, fmt.Errorf("line longer than %d bytes", maxLine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if len(buf) == 0 {
				return nil, off, false, io.EOF
			}
			s.off += int64(len(buf))
			s.lineNo++
			return buf, off, false, nil
		}
		if err != nil {
			return nil, off, false, err
		}
		s.off += int64(len(buf))
		s.lineNo++
		return buf[:len(buf)-1], off, true, nil
	}
}

// hashStore is a HashReader over the hashes file plus hashes not yet
// written to it (the pending tail, in stored-hash-index order).
type hashStore struct {
	f       *os.File
	onDisk  int64       // hashes in the file
	pending []tlog.Hash // hashes onDisk, onDisk+1, ...
}

// ReadHashes implements tlog.HashReader.
func (s *hashStore) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		switch {
		case x < 0 || x >= s.onDisk+int64(len(s.pending)):
			return nil, fmt.Errorf("read stored hash %d: beyond %d stored", x, s.onDisk+int64(len(s.pending)))
		case x >= s.onDisk:
			out[i] = s.pending[x-s.onDisk]
		default:
			if _, err := s.f.ReadAt(out[i][:], x*tlog.HashSize); err != nil {
				return nil, fmt.Errorf("read stored hash %d: %w", x, err)
			}
		}
	}
	return out, nil
}

// appendRecord adds the stored hashes of record n, whose record hash is h,
// to the pending tail: what tlog.StoredHashesForRecordHash returns, computed
// in place. The writer runs it for every record under its lock, and the
// library function allocates three slices each time (the differential test
// holds the two to the same hashes). On error nothing is added.
func (s *hashStore) appendRecord(n int64, h tlog.Hash) error {
	if want := tlog.StoredHashIndex(0, n); want != s.onDisk+int64(len(s.pending)) {
		return fmt.Errorf("store hashes of record %d: at stored hash %d, not %d", n, s.onDisk+int64(len(s.pending)), want)
	}
	start := len(s.pending)
	s.pending = append(s.pending, h)
	// Each trailing 1 bit of n completes a subtree with its left sibling.
	for i := range bits.TrailingZeros64(uint64(n + 1)) {
		left, err := s.readHash(tlog.StoredHashIndex(i, n>>uint(i)-1))
		if err != nil {
			s.pending = s.pending[:start]
			return err
		}
		h = tlog.NodeHash(left, h)
		s.pending = append(s.pending, h)
	}
	return nil
}

// readHash returns the stored hash at index x.
func (s *hashStore) readHash(x int64) (tlog.Hash, error) {
	var h tlog.Hash
	switch {
	case x < 0 || x >= s.onDisk+int64(len(s.pending)):
		return h, fmt.Errorf("read stored hash %d: beyond %d stored", x, s.onDisk+int64(len(s.pending)))
	case x >= s.onDisk:
		return s.pending[x-s.onDisk], nil
	}
	if _, err := s.f.ReadAt(h[:], x*tlog.HashSize); err != nil {
		return h, fmt.Errorf("read stored hash %d: %w", x, err)
	}
	return h, nil
}

// memHashes is an in-memory HashReader (verifier, tests).
type memHashes []tlog.Hash

// ReadHashes implements tlog.HashReader.
func (m memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m)) {
			return nil, fmt.Errorf("read stored hash %d: beyond %d stored", x, len(m))
		}
		out[i] = m[x]
	}
	return out, nil
}

// syncDir fsyncs a directory so that file creations and renames in it last.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// writeFileAtomic replaces path with data: temp file, fsync, rename, fsync dir.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	return atomicfile.WriteFile(path, data, perm)
}
