// Package demoapps serves the three small collaboration apps that
// `gatehouse demo` and the benchmarks put behind the proxy: chat (a page
// and a WebSocket echo), files (a file list with large downloads) and wiki.
// Each app shows the identity headers it received, so a visitor sees what
// Gatehouse told the upstream about them.
package demoapps

import (
	"context"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// App is one running demo upstream.
type App struct {
	Name string
	URL  string // http://127.0.0.1:PORT
	srv  *http.Server
}

// Close stops the app.
func (a *App) Close() error { return a.srv.Close() }

// Start serves the named app ("chat", "files", "wiki") on a free loopback port.
func Start(ctx context.Context, name string) (*App, error) {
	h, err := Handler(name)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo app %s: listen: %w", name, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return &App{Name: name, URL: "http://" + l.Addr().String(), srv: srv}, nil
}

// Handler returns the handler of the named app.
func Handler(name string) (http.Handler, error) {
	mux := http.NewServeMux()
	switch name {
	case "chat":
		mux.HandleFunc("GET /{$}", page("Chat", "#general: welcome to the demo chat. Messages echo over a WebSocket at /ws."))
		mux.HandleFunc("GET /ws", echoWS)
	case "files":
		mux.HandleFunc("GET /{$}", fileList)
		mux.HandleFunc("GET /files/{name}", download)
	case "wiki":
		mux.HandleFunc("GET /{$}", page("Wiki", "Home · Onboarding · Expenses policy · Security handbook"))
		mux.HandleFunc("GET /admin/", page("Wiki admin", "Site settings (admins only)."))
	default:
		return nil, fmt.Errorf("demo app %q: unknown (chat, files, wiki)", name)
	}
	mux.HandleFunc("GET /whoami", whoami)
	mux.HandleFunc("/", page("", "Page"))
	return mux, nil
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;color:#222}
code{background:#f2f2f2;padding:.1rem .3rem}li{margin:.2rem 0}</style></head>
<body><h1>{{.Title}}</h1><p>{{.Body}}</p>{{if .Files}}<ul>{{range .Files}}<li><a href="/files/{{.}}">{{.}}</a></li>{{end}}</ul>{{end}}
<p>Signed in as <code>{{.User}}</code>{{if .Groups}} (groups: <code>{{.Groups}}</code>){{end}} · path <code>{{.Path}}</code></p>
</body></html>`))

type pageData struct {
	Title, Body, User, Groups, Path string
	Files                           []string
}

func render(w http.ResponseWriter, r *http.Request, d pageData) {
	d.User = r.Header.Get("X-Gatehouse-Email")
	if d.User == "" {
		d.User = "(anonymous)"
	}
	d.Groups = r.Header.Get("X-Gatehouse-Groups")
	d.Path = r.URL.Path
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = pageTmpl.Execute(w, d)
}

func page(title, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t := title
		if t == "" {
			t = r.URL.Path
		}
		render(w, r, pageData{Title: t, Body: body})
	}
}

// FileNames lists the demo's files: 80 reports, enough for the bulk-download rule.
func FileNames() []string {
	names := make([]string, 0, 81)
	for i := 1; i <= 80; i++ {
		names = append(names, fmt.Sprintf("report-%02d.pdf", i))
	}
	return append(names, "big.bin")
}

func fileList(w http.ResponseWriter, r *http.Request) {
	render(w, r, pageData{Title: "Files", Body: "Shared files. big.bin is 1 GiB, streamed.", Files: FileNames()})
}

// download streams generated content: report-NN.pdf is 64 KiB, big.bin 1
// GiB; ?size=N overrides. Nothing is held in memory.
func download(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	size := int64(64 << 10)
	if name == "big.bin" {
		size = 1 << 30
	}
	if s := r.URL.Query().Get("size"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
			size = n
		}
	}
	ct := "application/pdf"
	if !strings.HasSuffix(name, ".pdf") {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	_, _ = io.CopyN(w, zeroReader{}, size)
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func whoami(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, k := range []string{"X-Gatehouse-User", "X-Gatehouse-Email", "X-Gatehouse-Groups", "X-Gatehouse-Roles", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		fmt.Fprintf(w, "%s: %s\n", k, r.Header.Get(k))
	}
	fmt.Fprintf(w, "Path: %s\n", r.URL.Path)
}

func echoWS(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := r.Context()
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, msg); err != nil {
			return
		}
	}
}
