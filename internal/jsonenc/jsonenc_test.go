package jsonenc

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// reference is encoding/json with HTML escaping off.
func reference(t testing.TB, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " and \ backslash`, "\b\f\n\r\t\x00\x1f\x7f", "<html>&amp;",
		"line\u2028sep\u2029", "invalid \xff\xfe utf-8", "é中😀", "\xed\xa0\x80 surrogate"} {
		if got, want := AppendString([]byte("x"), s), append([]byte("x"), reference(t, s)...); !bytes.Equal(got, want) {
			t.Errorf("AppendString(%q) = %s, want %s", s, got, want)
		}
	}
}

// TestAppendStringEveryByteInEveryLane: the eight-byte fast path must see
// each byte that needs a look wherever it stands in a word, next to plain
// bytes and next to the boundaries of what the word tricks compare with.
func TestAppendStringEveryByteInEveryLane(t *testing.T) {
	for c := range 256 {
		for lane := range 16 {
			for _, fill := range []byte{'a', ' ', '!', '#', '[', ']', '~', 0x7f} {
				s := []byte(strings.Repeat(string(rune(fill)), 19))
				s[lane] = byte(c)
				if got, want := AppendString(nil, string(s)), reference(t, string(s)); !bytes.Equal(got, want) {
					t.Fatalf("byte %#x at %d among %q: %s, want %s", c, lane, fill, got, want)
				}
			}
		}
	}
}

func BenchmarkAppendString(b *testing.B) {
	s := "/files/reports/2026/q4/quarterly-summary-final.pdf?download=1&user=alice@example.com"
	buf := make([]byte, 0, 256)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		buf = AppendString(buf[:0], s)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\u2028", "\xff", "<&>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := AppendString(nil, s), reference(t, s); !bytes.Equal(got, want) {
			t.Fatalf("AppendString(%q) = %s, want %s", s, got, want)
		}
	})
}

func TestAppendStrings(t *testing.T) {
	for _, ss := range [][]string{{}, {"a"}, {"a", "b\"c", "\u2028"}} {
		want, _ := json.Marshal(ss)
		if got := AppendStrings(nil, ss); !bytes.Equal(got, want) { // no <, >, & here: json.Marshal escapes those
			t.Errorf("AppendStrings(%q) = %s, want %s", ss, got, want)
		}
	}
	if got := string(AppendStrings(nil, nil)); got != "[]" {
		t.Errorf("AppendStrings(nil) = %s, want []", got)
	}
}

func BenchmarkAppendStringLong(b *testing.B) {
	s := strings.Repeat("eyJzdWIiOiJhbGljZSJ9", 25)
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		buf = AppendString(buf[:0], s)
	}
}
