package anomaly

import (
	"fmt"
	"mime"
	"path"
	"strings"
)

// Downloads decides which responses count as downloads for one route: a
// response with Content-Disposition: attachment always does; so does one
// whose path matches a pattern or whose media type is listed.
//
// Patterns without a slash ("*.pdf") match the last path segment; patterns
// with one match the whole path ("/files/*"), and a trailing "/*" or "/**"
// matches any depth below the prefix.
type Downloads struct {
	paths []string
	types []string
}

// NewDownloads checks the patterns and media types.
func NewDownloads(paths, contentTypes []string) (*Downloads, error) {
	d := &Downloads{}
	for _, p := range paths {
		if p == "" {
			return nil, fmt.Errorf("download pattern: empty")
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("download pattern %q: %w", p, err)
		}
		d.paths = append(d.paths, p)
	}
	for _, t := range contentTypes {
		mt, _, err := mime.ParseMediaType(t)
		if err != nil {
			return nil, fmt.Errorf("download content type %q: %w", t, err)
		}
		d.types = append(d.types, mt)
	}
	return d, nil
}

// MatchPath reports whether p (a normalised request path) matches a pattern.
func (d *Downloads) MatchPath(p string) bool {
	if d == nil {
		return false
	}
	for _, pat := range d.paths {
		if matchPattern(pat, p) {
			return true
		}
	}
	return false
}

func matchPattern(pat, p string) bool {
	if !strings.Contains(pat, "/") {
		ok, _ := path.Match(pat, path.Base(p))
		return ok
	}
	for _, suffix := range []string{"/**", "/*"} {
		if prefix, ok := strings.CutSuffix(pat, suffix); ok && !strings.ContainsAny(prefix, "*?[") {
			return strings.HasPrefix(p, prefix+"/") && len(p) > len(prefix)+1
		}
	}
	ok, _ := path.Match(pat, p)
	return ok
}

// Match reports whether a response is a download: Content-Disposition
// attachment, a matching path, or a listed media type.
func (d *Downloads) Match(p, contentType, contentDisposition string) bool {
	if disp, _, err := mime.ParseMediaType(contentDisposition); err == nil && strings.EqualFold(disp, "attachment") {
		return true
	}
	if d == nil {
		return false
	}
	if d.MatchPath(p) {
		return true
	}
	if contentType != "" && len(d.types) > 0 {
		if mt, _, err := mime.ParseMediaType(contentType); err == nil {
			for _, t := range d.types {
				if strings.EqualFold(mt, t) {
					return true
				}
			}
		}
	}
	return false
}
