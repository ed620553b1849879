package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/note"
)

func init() {
	register(command{name: "keys generate", summary: "make the audit signing key pair, session secret, assertion key and audit encryption key", run: runKeysGenerate})
}

const keysUsage = `Usage: gatehouse keys generate --out DIR [--name gatehouse-audit] [--force]

Writes, readable by the owner only unless public:
  session.key     session.secret_files: 32 random bytes, base64url (add new
                  keys first in the list to rotate; old ones keep opening)
  audit.key       audit.signing_key_file: Ed25519 note signer key
  audit.pub       the verifier key for auditors (gatehouse audit verify --key)
  assertion.pem   identity.assertion.key_file: ECDSA P-256 (ES256) key
  encryption.key  audit.encryption_key_file: 32 random bytes, base64

Existing files are never overwritten unless --force (a new audit key is a
key change the auditors must be told about).

Exit codes: 0 written; 1 a file exists or could not be written; 2 usage error.

Flags:
`

func runKeysGenerate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keys generate", flag.ContinueOnError)
	out := fs.String("out", "", "directory to write the keys to (created 0700)")
	name := fs.String("name", "gatehouse-audit", "the audit key's name (the checkpoint signature line)")
	force := fs.Bool("force", false, "overwrite existing key files")
	if stop, code := parseFlags(fs, keysUsage, args, stdout, stderr); stop {
		return code
	}
	if *out == "" {
		fmt.Fprintln(stderr, "gatehouse keys generate: --out is required")
		return exitUsage
	}
	files, err := generateKeys(*name)
	if err != nil {
		fmt.Fprintf(stderr, "gatehouse keys generate: %v\n", err)
		return 1
	}
	if err := writeKeys(*out, files, *force); err != nil {
		fmt.Fprintf(stderr, "gatehouse keys generate: %v\n", err)
		return 1
	}
	for _, f := range files {
		fmt.Fprintf(stdout, "wrote %s\n", filepath.Join(*out, f.name))
	}
	return 0
}

type keyFile struct {
	name string
	data []byte
	mode os.FileMode
}

func generateKeys(name string) ([]keyFile, error) {
	session := make([]byte, 32)
	enc := make([]byte, 32)
	if _, err := rand.Read(session); err != nil {
		return nil, err
	}
	if _, err := rand.Read(enc); err != nil {
		return nil, err
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return nil, fmt.Errorf("audit key: %w", err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		return nil, err
	}
	return []keyFile{
		{"session.key", []byte(base64.RawURLEncoding.EncodeToString(session) + "\n"), 0o600},
		{"audit.key", []byte(skey + "\n"), 0o600},
		{"audit.pub", []byte(vkey + "\n"), 0o644},
		{"assertion.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600},
		{"encryption.key", []byte(base64.StdEncoding.EncodeToString(enc) + "\n"), 0o600},
	}, nil
}

// writeKeys writes all files or none: existing ones are checked first.
func writeKeys(dir string, files []keyFile, force bool) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if !force {
		for _, f := range files {
			p := filepath.Join(dir, f.name)
			if _, err := os.Stat(p); err == nil {
				return fmt.Errorf("%s exists (use --force to replace it)", p)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("check %s: %w", p, err)
			}
		}
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, f.data, f.mode); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		if err := os.Chmod(tmp, f.mode); err != nil {
			return err
		}
		if err := os.Rename(tmp, p); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}
