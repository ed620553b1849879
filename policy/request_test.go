package policy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseRequestLine(t *testing.T) {
	tests := []struct {
		in   string
		want RequestLine
		err  bool
	}{
		{"GET https://files.example.com/x", RequestLine{Method: "GET", Scheme: "https", Host: "files.example.com", RawPath: "/x", Query: map[string][]string{}}, false},
		{"post https://Files.Example.COM.:8443/s/a%20b.pdf?download=1&x=2&x=3", RequestLine{Method: "POST", Scheme: "https", Host: "files.example.com", RawPath: "/s/a%20b.pdf",
			Query: map[string][]string{"download": {"1"}, "x": {"2", "3"}}}, false},
		{"  GET   http://[::1]:8080  ", RequestLine{Method: "GET", Scheme: "http", Host: "::1", RawPath: "/", Query: map[string][]string{}}, false},
		{"GET /relative", RequestLine{}, true},
		{"GET ftp://files.example.com/x", RequestLine{}, true},
		{"GET https://alice:pw@files.example.com/x", RequestLine{}, true},
		{"GET https://files.example.com/x#frag", RequestLine{}, true},
		{"GET https:///x", RequestLine{}, true},
		{"GET", RequestLine{}, true},
		{"GET https://a.example/ extra", RequestLine{}, true},
		{"G(T https://a.example/", RequestLine{}, true},
		{"GET https://a.example/?%zz", RequestLine{}, true},
		{"GET https://a.example/\xff", RequestLine{}, true},
		{"GET mailto:x@example.com", RequestLine{}, true},
		{"GET https://a.example/" + strings.Repeat("a", maxRequestLine), RequestLine{}, true},
	}
	for _, tc := range tests {
		got, err := ParseRequestLine(tc.in)
		if tc.err {
			if err == nil || !errors.Is(err, ErrRequestLine) {
				t.Errorf("%q: err %v, want ErrRequestLine", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.in, got, tc.want)
		}
	}
}

func FuzzParseRequestLine(f *testing.F) {
	for _, s := range []string{"GET https://files.example.com/x", "POST http://[::1]:80/a%2Fb?q=1", "get https://a.example", "X y", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rl, err := ParseRequestLine(s)
		if err != nil {
			if !errors.Is(err, ErrRequestLine) {
				t.Fatalf("error %v does not wrap ErrRequestLine", err)
			}
			return
		}
		if !isToken(rl.Method) || rl.Method != strings.ToUpper(rl.Method) {
			t.Fatalf("method %q", rl.Method)
		}
		if rl.Host == "" || rl.Host != strings.ToLower(rl.Host) || !strings.HasPrefix(rl.RawPath, "/") {
			t.Fatalf("host %q path %q", rl.Host, rl.RawPath)
		}
		if rl.Scheme != "http" && rl.Scheme != "https" {
			t.Fatalf("scheme %q", rl.Scheme)
		}
		if rl.Query == nil {
			t.Fatal("nil query")
		}
	})
}
