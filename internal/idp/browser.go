package idp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/html"
)

var defaultClient = &http.Client{Timeout: 5 * time.Second}

func newGet(ctx context.Context, u string) (*http.Request, error) {
	return http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
}

// Browser is a minimal browser for tests: a cookie jar, redirects followed
// (and recorded), HTML forms filled and submitted. Hosts maps host names
// (e.g. "chat.test") to the loopback address that serves them.
type Browser struct {
	Client    *http.Client
	transport *http.Transport

	mu      sync.Mutex
	visited []string
}

// Page is a response after redirects.
type Page struct {
	URL    *url.URL
	Status int
	Header http.Header
	Body   string
}

// NewBrowser returns a Browser dialing names in hosts ("chat.test" or
// "chat.test:80") to their addresses; other hosts are dialled as given.
func NewBrowser(hosts map[string]string) *Browser {
	jar, _ := cookiejar.New(nil)
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			h, _, _ := net.SplitHostPort(addr)
			if to, ok := hosts[addr]; ok {
				addr = to
			} else if to, ok := hosts[h]; ok {
				addr = to
			}
			return d.DialContext(ctx, network, addr)
		},
		DisableKeepAlives: true,
	}
	b := &Browser{transport: tr}
	b.Client = &http.Client{
		Jar:       jar,
		Transport: tr,
		Timeout:   20 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 20 {
				return fmt.Errorf("stopped after 20 redirects (a loop?)")
			}
			b.record(req.URL.String())
			return nil
		},
	}
	return b
}

// Trust makes the browser accept TLS certificates signed by pool.
func (b *Browser) Trust(pool *x509.CertPool) {
	b.transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

func (b *Browser) record(u string) {
	b.mu.Lock()
	b.visited = append(b.visited, u)
	b.mu.Unlock()
}

// Visited returns every URL requested so far, redirects included, and
// forgets them.
func (b *Browser) Visited() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	v := b.visited
	b.visited = nil
	return v
}

// Get loads u like a browser navigation.
func (b *Browser) Get(u string) (*Page, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return b.Do(req)
}

// Do sends req (browser navigation headers added when missing), follows
// redirects and reads the final page.
func (b *Browser) Do(req *http.Request) (*Page, error) {
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "text/html,application/xhtml+xml")
	}
	b.record(req.URL.String())
	resp, err := b.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	return &Page{URL: resp.Request.URL, Status: resp.StatusCode, Header: resp.Header, Body: string(body)}, nil
}

// Form is one HTML form of a page.
type Form struct {
	Action string
	Method string
	Values url.Values
	Fields []string // names of text/password/other visible inputs
}

// Forms parses the forms of p, with hidden values and button values
// (buttons naming a form by id are attached to it).
func (p *Page) Forms() []Form {
	doc, err := html.Parse(strings.NewReader(p.Body))
	if err != nil {
		return nil
	}
	var forms []Form
	ids := map[string]int{}
	var buttons []*html.Node
	var walk func(n *html.Node, cur int)
	walk = func(n *html.Node, cur int) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "form":
				forms = append(forms, Form{Action: attr(n, "action"), Method: strings.ToUpper(attr(n, "method")), Values: url.Values{}})
				cur = len(forms) - 1
				if id := attr(n, "id"); id != "" {
					ids[id] = cur
				}
			case "input":
				if cur >= 0 && attr(n, "name") != "" {
					switch attr(n, "type") {
					case "hidden":
						forms[cur].Values.Set(attr(n, "name"), attr(n, "value"))
					case "submit":
					default:
						forms[cur].Fields = append(forms[cur].Fields, attr(n, "name"))
					}
				}
			case "button":
				if attr(n, "form") != "" {
					buttons = append(buttons, n)
				} else if cur >= 0 && attr(n, "name") != "" && len(forms[cur].Values[attr(n, "name")]) == 0 {
					forms[cur].Values.Set(attr(n, "name"), attr(n, "value"))
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, cur)
		}
	}
	walk(doc, -1)
	for _, bt := range buttons {
		if i, ok := ids[attr(bt, "form")]; ok && attr(bt, "name") != "" && len(forms[i].Values[attr(bt, "name")]) == 0 {
			forms[i].Values.Set(attr(bt, "name"), attr(bt, "value"))
		}
	}
	return forms
}

func attr(n *html.Node, k string) string {
	for _, a := range n.Attr {
		if a.Key == k {
			return a.Val
		}
	}
	return ""
}

// FormWith returns the first form of p having a field or hidden value
// named name.
func (p *Page) FormWith(name string) (Form, bool) {
	for _, f := range p.Forms() {
		if _, ok := f.Values[name]; ok {
			return f, true
		}
		for _, n := range f.Fields {
			if n == name {
				return f, true
			}
		}
	}
	return Form{}, false
}

// Submit posts (or gets) form f of page p with its values plus set.
func (b *Browser) Submit(p *Page, f Form, set map[string]string) (*Page, error) {
	vals := url.Values{}
	for k, v := range f.Values {
		vals[k] = append([]string(nil), v...)
	}
	for k, v := range set {
		vals.Set(k, v)
	}
	action, err := p.URL.Parse(f.Action)
	if err != nil {
		return nil, err
	}
	if f.Method == "GET" {
		action.RawQuery = vals.Encode()
		return b.Get(action.String())
	}
	req, err := http.NewRequest(http.MethodPost, action.String(), strings.NewReader(vals.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	return b.Do(req)
}

// SignIn fills the test IdP's (or Dex's) login form on p and, when the
// IdP asks for it, the TOTP form with a code from totpSecret.
func (b *Browser) SignIn(p *Page, user, password, totpSecret string) (*Page, error) {
	f, ok := p.FormWith("password")
	if !ok {
		return nil, fmt.Errorf("no login form at %s (status %d):\n%s", p.URL, p.Status, clip(p.Body))
	}
	userField := "username"
	for _, n := range f.Fields {
		if n == "login" { // Dex
			userField = "login"
		}
	}
	next, err := b.Submit(p, f, map[string]string{userField: user, "password": password})
	if err != nil {
		return nil, err
	}
	if otp, ok := next.FormWith("otp"); ok {
		if totpSecret == "" {
			return next, nil
		}
		code, err := TOTP(totpSecret, time.Now(), 6)
		if err != nil {
			return nil, err
		}
		return b.Submit(next, otp, map[string]string{"otp": code})
	}
	return next, nil
}

func clip(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "..."
	}
	return s
}
