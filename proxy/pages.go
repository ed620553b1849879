package proxy

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
)

// Error pages are embedded html/template files under pages/: one layout and
// one body per status. They are honest (who is signed in, the request id to
// quote) and never show policy internals such as deny reasons.

//go:embed pages/*.html
var pageFS embed.FS

// pageData is what an error page may show.
type pageData struct {
	Status    int
	Title     string
	Detail    string // short, safe explanation (never a policy reason)
	RequestID string
	User      string // email or subject of the signed-in user, "" if anonymous
	Host      string
}

var pageTitles = map[int]string{
	http.StatusBadRequest:         "Bad request",
	http.StatusForbidden:          "Access denied",
	http.StatusNotFound:           "Not found",
	http.StatusBadGateway:         "The application is not answering",
	http.StatusServiceUnavailable: "Temporarily unavailable",
}

var pageTemplates = func() map[int]*template.Template {
	out := make(map[int]*template.Template)
	for status := range pageTitles {
		t := template.Must(template.ParseFS(pageFS, "pages/layout.html", "pages/"+strconv.Itoa(status)+".html"))
		out[status] = t
	}
	return out
}()

// renderPage writes an error page for status: HTML for browsers, a small
// JSON object for clients that ask for JSON.
func renderPage(w http.ResponseWriter, r *http.Request, d pageData) {
	if _, ok := pageTemplates[d.Status]; !ok {
		d.Status = http.StatusServiceUnavailable
	}
	d.Title = pageTitles[d.Status]
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if d.RequestID != "" {
		h.Set("X-Request-Id", d.RequestID)
	}
	if wantsJSON(r) {
		h.Set("Content-Type", "application/json")
		w.WriteHeader(d.Status)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"status": d.Status, "error": d.Title, "detail": d.Detail, "request_id": d.RequestID,
		})
		return
	}
	body, err := pageHTML(d)
	if err != nil {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(d.Status)
		fmt.Fprintf(w, "%d %s\nrequest id: %s\n", d.Status, d.Title, d.RequestID)
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(d.Status)
	if r == nil || r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func pageHTML(d pageData) ([]byte, error) {
	t, ok := pageTemplates[d.Status]
	if !ok {
		return nil, fmt.Errorf("no page for status %d", d.Status)
	}
	if d.Title == "" {
		d.Title = pageTitles[d.Status]
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "layout", d); err != nil {
		return nil, fmt.Errorf("render %d page: %w", d.Status, err)
	}
	return b.Bytes(), nil
}

// wantsJSON reports whether the client prefers JSON over HTML.
func wantsJSON(r *http.Request) bool {
	if r == nil {
		return false
	}
	a := r.Header.Get("Accept")
	return strings.Contains(a, "application/json") && !strings.Contains(a, "text/html")
}

// displayName is how an identity is named on pages.
func displayName(id Identity) string {
	if id.Email != "" {
		return id.Email
	}
	return id.Subject
}
