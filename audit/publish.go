package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Publisher sends a signed checkpoint somewhere outside the log directory, so
// that an attacker who rewrites or truncates the log cannot also rewrite
// every copy of what it once said.
type Publisher interface {
	Publish(checkpoint []byte) error
}

// FilePublisher keeps the latest checkpoint in Path (ideally on another
// mount), replaced atomically: readers see the old or the new, never half.
// It never replaces a checkpoint with one that does not extend it (see
// Publish); the writer refuses to open a log that does not contain the
// published checkpoint, so each checkpoint it signs afterwards extends it.
type FilePublisher struct{ Path string }

// ErrCheckpointNotExtended is returned (wrapped) by FilePublisher.Publish
// when the new checkpoint would replace one it does not extend: another
// origin, fewer records, or the same size with another root.
var ErrCheckpointNotExtended = errors.New("checkpoint does not extend the published one")

// Publish writes the checkpoint to the file, unless the file holds a
// checkpoint the new one does not extend (ErrCheckpointNotExtended): the
// published copy is the evidence against a rolled-back or forked log and is
// left alone. A file that does not parse as a checkpoint is refused too.
func (p FilePublisher) Publish(cp []byte) error {
	next, err := noteCheckpoint(cp)
	if err != nil {
		return fmt.Errorf("publish checkpoint to %s: %w", p.Path, err)
	}
	old, err := os.ReadFile(p.Path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("publish checkpoint to %s: %w", p.Path, err)
	default:
		prev, err := noteCheckpoint(old)
		if err != nil {
			return fmt.Errorf("publish checkpoint to %s: %w: the file holds no checkpoint: %v", p.Path, ErrCheckpointNotExtended, err)
		}
		switch {
		case prev.Origin != next.Origin:
			return fmt.Errorf("publish checkpoint to %s: %w: origin %q, published %q", p.Path, ErrCheckpointNotExtended, next.Origin, prev.Origin)
		case next.Size < prev.Size:
			return fmt.Errorf("publish checkpoint to %s: %w: %d records, published %d", p.Path, ErrCheckpointNotExtended, next.Size, prev.Size)
		case next.Size == prev.Size && next.Root != prev.Root:
			return fmt.Errorf("publish checkpoint to %s: %w: %d records with another root", p.Path, ErrCheckpointNotExtended, next.Size)
		}
	}
	if err := os.MkdirAll(filepath.Dir(p.Path), 0o750); err != nil {
		return fmt.Errorf("publish checkpoint to %s: %w", p.Path, err)
	}
	if err := writeFileAtomic(p.Path, cp, 0o644); err != nil {
		return fmt.Errorf("publish checkpoint to %s: %w", p.Path, err)
	}
	return nil
}

// WebhookPublisher POSTs each checkpoint (text/plain, note format) to URL.
type WebhookPublisher struct {
	URL    string
	Client *http.Client // default: 5 s timeout
}

// Publish posts the checkpoint; any non-2xx answer is an error.
func (p WebhookPublisher) Publish(cp []byte) error {
	c := p.Client
	if c == nil {
		c = &http.Client{Timeout: 5 * time.Second}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(cp))
	if err != nil {
		return fmt.Errorf("publish checkpoint: %w", err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("publish checkpoint: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("publish checkpoint: webhook answered %s", resp.Status)
	}
	return nil
}

// noteCheckpoint parses the text of a signed checkpoint note without
// checking its signatures (the publisher holds no verifier key).
func noteCheckpoint(msg []byte) (Checkpoint, error) {
	i := bytes.Index(msg, []byte("\n\n"))
	if i < 0 {
		return Checkpoint{}, fmt.Errorf("%w: not a signed note", ErrMalformedCheckpoint)
	}
	return ParseCheckpointText(string(msg[:i+1]))
}
