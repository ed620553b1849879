package audit

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Key is an audit signing key: the note signer and its public verifier key.
// The private part never appears in errors or String output.
type Key struct {
	Signer   note.Signer
	Verifier string // note verifier key: name+hash+base64
}

// String names the key without revealing it.
func (k *Key) String() string { return "audit key " + k.Verifier }

// ErrBadKey is returned (wrapped) for an unreadable signing or verifier key.
var ErrBadKey = errors.New("bad audit key")

// ParseSigningKey parses a note private key ("PRIVATE+KEY+name+hash+base64",
// as written by note.GenerateKey and `gatehouse keys generate`). Errors do
// not contain the key.
func ParseSigningKey(skey string) (*Key, error) {
	skey = strings.TrimSpace(skey)
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("%w: signing key is not a note private key", ErrBadKey)
	}
	parts := strings.SplitN(skey, "+", 5)
	raw, err := base64.StdEncoding.DecodeString(parts[len(parts)-1])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, fmt.Errorf("%w: signing key is not Ed25519", ErrBadKey)
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(s.Name(), pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return &Key{Signer: s, Verifier: vkey}, nil
}

// LoadSigningKey reads a signing key file.
func LoadSigningKey(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read audit signing key %s: %w", path, err)
	}
	k, err := ParseSigningKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("load audit signing key %s: %w", path, err)
	}
	return k, nil
}

// ParseVerifierKey parses a note verifier key ("name+hash+base64").
func ParseVerifierKey(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, fmt.Errorf("%w: not a note verifier key: %v", ErrBadKey, err)
	}
	return v, nil
}

// LoadVerifierKey reads a verifier key file (key.pub).
func LoadVerifierKey(path string) (note.Verifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read audit verifier key %s: %w", path, err)
	}
	v, err := ParseVerifierKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("load audit verifier key %s: %w", path, err)
	}
	return v, nil
}
