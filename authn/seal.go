package authn

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// ErrSealed is returned for any value that cannot be opened: tampered,
// truncated, sealed under an unknown key, for another purpose or host, or
// expired. Callers treat it as "no value".
var ErrSealed = errors.New("authn: sealed value invalid")

// sealer seals small values with AES-256-GCM. The first key seals; every key
// opens, so a new key can be put first without logging anyone out. The
// additional data binds a value to its purpose and host, so a cookie copied
// to another host or used as another kind of value does not open.
type sealer struct {
	keys []sealKey
	mac  []byte // for CSRF tokens, derived from the first key
}

type sealKey struct {
	id   uint32
	aead cipher.AEAD
}

const sealVersion = 1

func newSealer(secrets [][]byte) (*sealer, error) {
	s := &sealer{}
	for i, sec := range secrets {
		k, err := hkdf.Key(sha256.New, sec, nil, "gatehouse authn seal v1", 32)
		if err != nil {
			return nil, fmt.Errorf("derive session key %d: %w", i+1, err)
		}
		blk, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("session key %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(blk)
		if err != nil {
			return nil, fmt.Errorf("session key %d: %w", i+1, err)
		}
		idSum := sha256.Sum256(k)
		s.keys = append(s.keys, sealKey{id: binary.BigEndian.Uint32(idSum[:4]), aead: aead})
		if i == 0 {
			s.mac, err = hkdf.Key(sha256.New, sec, nil, "gatehouse authn mac v1", 32)
			if err != nil {
				return nil, fmt.Errorf("derive mac key: %w", err)
			}
		}
	}
	if len(s.keys) == 0 {
		return nil, fmt.Errorf("%w: no session keys", ErrConfig)
	}
	return s, nil
}

func aad(purpose, host string, exp time.Time) []byte {
	b := make([]byte, 0, len(purpose)+len(host)+10)
	b = append(b, purpose...)
	b = append(b, 0)
	b = append(b, host...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint64(b, uint64(exp.Unix()))
}

// seal returns base64url(version | key id | expiry | nonce | ciphertext).
func (s *sealer) seal(purpose, host string, exp time.Time, plain []byte) string {
	k := s.keys[0]
	nonce := make([]byte, k.aead.NonceSize())
	rand.Read(nonce)
	out := make([]byte, 0, 1+4+8+len(nonce)+len(plain)+k.aead.Overhead())
	out = append(out, sealVersion)
	out = binary.BigEndian.AppendUint32(out, k.id)
	out = binary.BigEndian.AppendUint64(out, uint64(exp.Unix()))
	out = append(out, nonce...)
	out = k.aead.Seal(out, nonce, plain, aad(purpose, host, exp))
	return base64.RawURLEncoding.EncodeToString(out)
}

// open reverses seal; it fails with ErrSealed when the value is not
// authentic for purpose and host, or when now is past its expiry.
func (s *sealer) open(purpose, host string, now time.Time, value string) ([]byte, error) {
	plain, _, err := s.openExp(purpose, host, now, value)
	return plain, err
}

// openExp is open that also returns the sealed value's expiry.
func (s *sealer) openExp(purpose, host string, now time.Time, value string) ([]byte, time.Time, error) {
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < 1+4+8 || raw[0] != sealVersion {
		return nil, time.Time{}, ErrSealed
	}
	id := binary.BigEndian.Uint32(raw[1:5])
	expU := binary.BigEndian.Uint64(raw[5:13])
	if expU > 1<<40 {
		return nil, time.Time{}, ErrSealed
	}
	exp := time.Unix(int64(expU), 0)
	rest := raw[13:]
	for _, k := range s.keys {
		if k.id != id {
			continue
		}
		ns := k.aead.NonceSize()
		if len(rest) < ns+k.aead.Overhead() {
			return nil, time.Time{}, ErrSealed
		}
		plain, err := k.aead.Open(nil, rest[:ns], rest[ns:], aad(purpose, host, exp))
		if err != nil {
			return nil, time.Time{}, ErrSealed
		}
		if !now.Before(exp) {
			return nil, time.Time{}, ErrSealed
		}
		return plain, exp, nil
	}
	return nil, time.Time{}, ErrSealed
}

// token is an HMAC of the parts, for CSRF tokens.
func (s *sealer) token(parts ...string) string {
	m := hmac.New(sha256.New, s.mac)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *sealer) checkToken(got string, parts ...string) bool {
	return hmac.Equal([]byte(got), []byte(s.token(parts...)))
}

// randomID returns n random bytes, base64url encoded.
func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func sha256B64(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
