package audit

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/jsonenc"
)

// Encryption at rest: the personal fields of a record (email, name, client
// IP, user agent and the policy input document) are sealed with AES-256-GCM
// under a data key of the record's period (a calendar month, UTC). Each data
// key is stored in keys/<period>.key wrapped (AES-256-GCM) by the master key
// from encryption_key_file. The sealed bytes are part of the record line,
// so the Merkle tree and `audit verify` never need a key. Destroying a
// period's data key (`audit shred`) makes its personal fields unreadable for
// good while the records stay verifiable.

// ErrShredded: the data key of the record's period was destroyed.
var ErrShredded = errors.New("personal fields shredded (data key destroyed)")

// ErrDataKeyRefused: a period's data key file does not open with the
// encryption key (another key, or the file was altered).
var ErrDataKeyRefused = errors.New("does not open with this encryption key")

// ErrNoKey: the record is sealed and no encryption key was given.
var ErrNoKey = errors.New("personal fields sealed; no encryption key given")

const masterKeySize = 32

// ParseEncryptionKey accepts 32 bytes as base64 or hex text.
func ParseEncryptionKey(text string) ([]byte, error) {
	text = strings.TrimSpace(text)
	if b, err := base64.StdEncoding.DecodeString(text); err == nil && len(b) == masterKeySize {
		return b, nil
	}
	if b, err := hex.DecodeString(text); err == nil && len(b) == masterKeySize {
		return b, nil
	}
	return nil, fmt.Errorf("%w: encryption key must be 32 bytes in base64 or hex", ErrBadKey)
}

// LoadEncryptionKey reads an encryption_key_file.
func LoadEncryptionKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read audit encryption key %s: %w", path, err)
	}
	k, err := ParseEncryptionKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("load audit encryption key %s: %w", path, err)
	}
	return k, nil
}

// Period returns the data-key period of t ("2006-01", UTC).
func Period(t time.Time) string { return t.UTC().Format("2006-01") }

// personal is the sealed part of a record. Input is kept as raw JSON: the
// writer seals a record's InputJSON as it is (or the encoding of its Input
// map), and Unseal decodes it into Record.Input, as sealed logs always
// read (older ones hold the same object, encoded by encoding/json).
type personal struct {
	Email     string          `json:"email,omitempty"`
	Name      string          `json:"name,omitempty"`
	ClientIP  string          `json:"client_ip,omitempty"`
	UserAgent string          `json:"user_agent,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
}

// Keyring opens (and, for the writer, creates) per-period data keys.
type Keyring struct {
	dir    string
	master cipher.AEAD
	mu     sync.Mutex
	keys   map[string]cipher.AEAD
}

// NewKeyring returns the keyring of the log in dir under the master key.
func NewKeyring(dir string, master []byte) (*Keyring, error) {
	a, err := newGCM(master)
	if err != nil {
		return nil, err
	}
	return &Keyring{dir: dir, master: a, keys: map[string]cipher.AEAD{}}, nil
}

// check fails when the log has data keys and the encryption key opens none
// of them: a wrong encryption key, which would leave every record
// unreadable. Data keys that are only malformed, or absent (shredded), are
// no sign of a wrong key; a few keys that do not open beside others that do
// are reported per record by Scan.
func (k *Keyring) check() error {
	ents, err := os.ReadDir(filepath.Join(k.dir, keysDir))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("read data keys: %w", err)
	}
	opened, refused := 0, 0
	for _, e := range ents {
		period, ok := strings.CutSuffix(e.Name(), ".key")
		if !ok {
			continue
		}
		_, err := k.key(period, false)
		switch {
		case err == nil:
			opened++
		case errors.Is(err, ErrDataKeyRefused):
			refused++
		}
	}
	if opened == 0 && refused > 0 {
		return fmt.Errorf("%w: the encryption key opens none of the log's %d data key(s) (wrong encryption key?)", ErrBadKey, refused)
	}
	return nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != masterKeySize {
		return nil, fmt.Errorf("%w: want a 32-byte key", ErrBadKey)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return cipher.NewGCM(b)
}

func (k *Keyring) keyPath(period string) string {
	return filepath.Join(k.dir, keysDir, period+".key")
}

// key returns the data key of period, creating it when create is set.
func (k *Keyring) key(period string, create bool) (cipher.AEAD, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if a, ok := k.keys[period]; ok {
		return a, nil
	}
	aad := []byte("gatehouse-audit-data-key:" + period)
	path := k.keyPath(period)
	b, err := os.ReadFile(path)
	var dk []byte
	switch {
	case err == nil:
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		ns := k.master.NonceSize()
		if err != nil || len(raw) < ns {
			return nil, fmt.Errorf("data key %s: malformed", period)
		}
		dk, err = k.master.Open(nil, raw[:ns], raw[ns:], aad)
		if err != nil {
			return nil, fmt.Errorf("data key %s: %w", period, ErrDataKeyRefused)
		}
	case errors.Is(err, os.ErrNotExist) && create:
		dk = make([]byte, 32)
		if _, err := rand.Read(dk); err != nil {
			return nil, fmt.Errorf("data key %s: %w", period, err)
		}
		nonce := make([]byte, k.master.NonceSize())
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("data key %s: %w", period, err)
		}
		wrapped := k.master.Seal(nonce, nonce, dk, aad)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("data key %s: %w", period, err)
		}
		if err := writeFileAtomic(path, []byte(base64.StdEncoding.EncodeToString(wrapped)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("data key %s: %w", period, err)
		}
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("period %s: %w", period, ErrShredded)
	default:
		return nil, fmt.Errorf("data key %s: %w", period, err)
	}
	a, err := newGCM(dk)
	if err != nil {
		return nil, err
	}
	k.keys[period] = a
	return a, nil
}

// sealer moves personal fields into Record.Sealed on the write path.
type sealer struct{ ring *Keyring }

func newSealer(dir string, master []byte) (*sealer, error) {
	r, err := NewKeyring(dir, master)
	if err != nil {
		return nil, err
	}
	return &sealer{ring: r}, nil
}

// plaintext returns the JSON of r's personal fields (a [personal] object)
// and clears them from r (nil when r has none). It needs neither the index
// nor the time, so Append runs it outside the log's lock.
func (s *sealer) plaintext(r *Record) ([]byte, error) {
	hasInput := len(r.InputJSON) > len("{}") || len(r.Input) > 0
	if r.Email == "" && r.Name == "" && r.ClientIP == "" && r.UserAgent == "" && !hasInput {
		return nil, nil
	}
	b := make([]byte, 0, 128+len(r.InputJSON))
	sep := byte('{')
	field := func(name, v string) {
		if v != "" {
			b = jsonenc.AppendString(append(append(b, sep), name...), v)
			sep = ','
		}
	}
	field(`"email":`, r.Email)
	field(`"name":`, r.Name)
	field(`"client_ip":`, r.ClientIP)
	field(`"user_agent":`, r.UserAgent)
	if hasInput {
		b = append(append(b, sep), `"input":`...)
		sep = ','
		if len(r.InputJSON) > 0 {
			b = append(b, r.InputJSON...)
		} else {
			var err error
			if b, err = appendMap(b, r.Input, 1); err != nil {
				return nil, fmt.Errorf("seal personal fields: %w", err)
			}
		}
	}
	b = append(b, '}')
	r.Email, r.Name, r.ClientIP, r.UserAgent, r.Input, r.InputJSON = "", "", "", "", nil, nil
	return b, nil
}

// seal encrypts plain under the data key of t's period, bound to the
// record's index.
func (s *sealer) seal(plain []byte, index int64, t time.Time) (*Sealed, error) {
	period := Period(t)
	a, err := s.ring.key(period, true)
	if err != nil {
		return nil, fmt.Errorf("seal personal fields: %w", err)
	}
	nonce := make([]byte, a.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal personal fields: %w", err)
	}
	return &Sealed{Period: period, Nonce: nonce, Data: a.Seal(nil, nonce, plain, sealAAD(index))}, nil
}

func sealAAD(index int64) []byte {
	return []byte("gatehouse-audit-record:" + strconv.FormatInt(index, 10))
}

// Unseal restores the personal fields of a sealed record in place. Without
// a keyring it returns ErrNoKey; for a shredded period, ErrShredded.
func (k *Keyring) Unseal(r *Record) error {
	if r.Sealed == nil {
		return nil
	}
	if k == nil {
		return ErrNoKey
	}
	a, err := k.key(r.Sealed.Period, false)
	if err != nil {
		return fmt.Errorf("unseal record %d: %w", r.Index, err)
	}
	if len(r.Sealed.Nonce) != a.NonceSize() {
		return fmt.Errorf("unseal record %d: bad nonce", r.Index)
	}
	plain, err := a.Open(nil, r.Sealed.Nonce, r.Sealed.Data, sealAAD(r.Index))
	if err != nil {
		return fmt.Errorf("unseal record %d: does not decrypt", r.Index)
	}
	var p personal
	if err := json.Unmarshal(plain, &p); err != nil {
		return fmt.Errorf("unseal record %d: %w", r.Index, err)
	}
	var input map[string]any
	if len(p.Input) > 0 {
		if err := json.Unmarshal(p.Input, &input); err != nil {
			return fmt.Errorf("unseal record %d: input: %w", r.Index, err)
		}
	}
	r.Email, r.Name, r.ClientIP, r.UserAgent, r.Input, r.InputJSON = p.Email, p.Name, p.ClientIP, p.UserAgent, input, nil
	r.Sealed = nil
	return nil
}

// Shred destroys the data keys of every period that ended before t, making
// their personal fields unreadable; records and checkpoints are untouched so
// the log still verifies. It returns the periods destroyed.
func Shred(dir string, before time.Time) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(dir, keysDir))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("shred: %w", err)
	}
	var done []string
	for _, e := range ents {
		period, ok := strings.CutSuffix(e.Name(), ".key")
		if !ok {
			continue
		}
		start, err := time.Parse("2006-01", period)
		if err != nil {
			continue
		}
		if end := start.AddDate(0, 1, 0); end.After(before) {
			continue
		}
		path := filepath.Join(dir, keysDir, e.Name())
		if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil { // overwrite, then remove
			if st, err := f.Stat(); err == nil {
				f.Write(make([]byte, st.Size()))
				f.Sync()
			}
			f.Close()
		}
		if err := os.Remove(path); err != nil {
			return done, fmt.Errorf("shred period %s: %w", period, err)
		}
		done = append(done, period)
	}
	if err := syncDir(filepath.Join(dir, keysDir)); err != nil {
		return done, fmt.Errorf("shred: %w", err)
	}
	sort.Strings(done)
	return done, nil
}
