package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestParseDuration(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"12h", 12 * time.Hour, ""},
		{"90s", 90 * time.Second, ""},
		{"400d", 400 * day, ""},
		{"1d12h", day + 12*time.Hour, ""},
		{"1.5d", 36 * time.Hour, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"50ms", 50 * time.Millisecond, ""},
		{"0", 0, ""},
		{" 10m ", 10 * time.Minute, ""},
		{"", 0, "empty"},
		{"90", 0, "missing unit"},
		{"-1h", 0, "must not be signed"},
		{"+1h", 0, "must not be signed"},
		{"1w", 0, "unknown unit"},
		{"h", 0, "expected a number"},
		{"1..5h", 0, "unknown unit"},
		{"99999999999d", 0, "too large"},
		{"106751d106751d", 0, "too large"},
	} {
		got, err := ParseDuration(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrDuration) {
				t.Errorf("ParseDuration(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got.D() != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got.D(), err, tc.want)
		}
	}
}

func TestDurationStringRoundTrip(t *testing.T) {
	for _, d := range []time.Duration{0, time.Millisecond * 50, 90 * time.Second, 2 * time.Hour,
		90 * time.Minute, 24 * time.Hour, 36 * time.Hour, 400 * 24 * time.Hour, 25*time.Hour + time.Second} {
		s := Duration(d).String()
		back, err := ParseDuration(s)
		if err != nil || back.D() != d {
			t.Errorf("%v prints %q, which reads back as %v, %v", d, s, back.D(), err)
		}
	}
	if s := Duration(400 * 24 * time.Hour).String(); s != "400d" {
		t.Errorf("400d prints %q", s)
	}
	if s := Duration(2 * time.Hour).String(); s != "2h" {
		t.Errorf("2h prints %q", s)
	}
	var d Duration
	if err := d.UnmarshalText([]byte("1d12h")); err != nil || d.D() != 36*time.Hour {
		t.Errorf("UnmarshalText(1d12h) = %v, %v", d.D(), err)
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		err  bool
	}{
		{"500MB", 500_000_000, false},
		{"1GiB", 1 << 30, false},
		{"1024", 1024, false},
		{"1024B", 1024, false},
		{"64 KiB", 64 << 10, false},
		{"1kB", 1000, false},
		{"1.5GiB", 3 << 29, false},
		{"2TB", 2_000_000_000_000, false},
		{"500mb", 500_000_000, false},
		{"0", 0, false},
		{"", 0, true},
		{"MB", 0, true},
		{"5XB", 0, true},
		{"1K", 0, true},
		{"-5MB", 0, true},
		{"99999999999PiB", 0, true},
		{"9223372036854775808", 0, true},
	} {
		got, err := ParseSize(tc.in)
		if tc.err {
			if err == nil || !errors.Is(err, ErrSize) {
				t.Errorf("ParseSize(%q) = %d, %v; want error", tc.in, got, err)
			}
			continue
		}
		if err != nil || got.Int64() != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, s := range []Size{0, 1, 1000, 1 << 20, 500_000_000, 3 << 29, 1234567} {
		back, err := ParseSize(s.String())
		if err != nil || back != s {
			t.Errorf("Size %d prints %q, reads back as %d, %v", s, s.String(), back, err)
		}
	}
}

func TestSecretNeverPrints(t *testing.T) {
	const raw = "hunter2-very-secret"
	s := Secret(raw)
	type holder struct {
		Token Secret `json:"token" yaml:"token"`
	}
	h := holder{Token: s}
	outs := map[string]string{
		"%v": fmt.Sprintf("%v", s), "%s": fmt.Sprintf("%s", s), "%q": fmt.Sprintf("%q", s),
		"%x": fmt.Sprintf("%x", s), "%X": fmt.Sprintf("%X", s), "%d": fmt.Sprintf("%d", s),
		"%#v": fmt.Sprintf("%#v", s), "%+v struct": fmt.Sprintf("%+v", h), "%#v struct": fmt.Sprintf("%#v", h),
		"String": s.String(), "GoString": s.GoString(), "error": fmt.Errorf("x: %v", s).Error(),
	}
	j, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	outs["json"] = string(j)
	y, err := yaml.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	outs["yaml"] = string(y)
	hexRaw := fmt.Sprintf("%x", raw)
	for k, out := range outs {
		if strings.Contains(out, raw) || strings.Contains(strings.ToLower(out), hexRaw) {
			t.Errorf("%s reveals the secret: %s", k, out)
		}
		if !strings.Contains(out, "redacted") {
			t.Errorf("%s = %q, want [redacted]", k, out)
		}
	}
	if s.Reveal() != raw {
		t.Errorf("Reveal() = %q", s.Reveal())
	}
	if Secret("").String() != "" {
		t.Error("an empty secret should print as empty, so unset is visible")
	}
}

func TestParseNight(t *testing.T) {
	for _, tc := range []struct {
		in         string
		start, end time.Duration
		ok         bool
	}{
		{"22:00-06:00", 22 * time.Hour, 6 * time.Hour, true},
		{"00:30-05:15", 30 * time.Minute, 5*time.Hour + 15*time.Minute, true},
		{"22:00-22:00", 0, 0, false},
		{"22:00-6:00", 0, 0, false},
		{"24:00-06:00", 0, 0, false},
		{"22:60-06:00", 0, 0, false},
		{"22:00", 0, 0, false},
		{"+1:00-06:00", 0, 0, false},
		{"", 0, 0, false},
	} {
		s, e, err := ParseNight(tc.in)
		if (err == nil) != tc.ok || s != tc.start || e != tc.end {
			t.Errorf("ParseNight(%q) = %v, %v, %v", tc.in, s, e, err)
		}
	}
}
