package audit

import (
	"bytes"
	"context"
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
type FilePublisher struct{ Path string }

// Publish writes the checkpoint to the file.
func (p FilePublisher) Publish(cp []byte) error {
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
