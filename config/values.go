package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written as "12h", "90s", or with days: "400d",
// "1d12h". A day is exactly 24 hours. Negative durations are refused.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d so that ParseDuration reads it back: whole days as "Nd",
// anything else as time.Duration does ("1h30m0s").
func (d Duration) String() string {
	const day = 24 * time.Hour
	td := time.Duration(d)
	if td > 0 && td%day == 0 {
		return strconv.FormatInt(int64(td/day), 10) + "d"
	}
	if td > day {
		return strconv.FormatInt(int64(td/day), 10) + "d" + compact(td%day)
	}
	return compact(td)
}

// compact drops the zero minutes and seconds time.Duration prints: "2h", not "2h0m0s".
func compact(td time.Duration) string {
	s := td.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// MarshalText writes d as String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a duration as ParseDuration does.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// ErrDuration is wrapped by every ParseDuration error.
var ErrDuration = errors.New("invalid duration")

// ParseDuration reads "12h", "90s", "1.5h", "400d" or "1d12h": the units of
// time.ParseDuration plus d (24h). A bare "0" is zero; other bare numbers need
// a unit. Signs are refused: no configured duration is negative.
func ParseDuration(s string) (Duration, error) {
	in := s
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("%w: empty", ErrDuration)
	}
	if s == "0" {
		return 0, nil
	}
	if s[0] == '-' || s[0] == '+' {
		return 0, fmt.Errorf("%w %q: must not be signed", ErrDuration, in)
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("%w %q: expected a number", ErrDuration, in)
		}
		j := i
		for j < len(s) && !(s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
			j++
		}
		num, unit := s[:i], strings.TrimSpace(s[i:j])
		s = s[j:]
		if unit == "" {
			return 0, fmt.Errorf("%w %q: missing unit (e.g. 90s, 12h, 400d)", ErrDuration, in)
		}
		var part time.Duration
		if unit == "d" {
			f, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("%w %q", ErrDuration, in)
			}
			h := f * 24 * float64(time.Hour)
			if h > math.MaxInt64 {
				return 0, fmt.Errorf("%w %q: too large", ErrDuration, in)
			}
			part = time.Duration(h)
		} else {
			p, err := time.ParseDuration(num + unit)
			if err != nil {
				return 0, fmt.Errorf("%w %q: unknown unit %q (use ns, us, ms, s, m, h, d)", ErrDuration, in, unit)
			}
			part = p
		}
		if total > math.MaxInt64-part {
			return 0, fmt.Errorf("%w %q: too large", ErrDuration, in)
		}
		total += part
	}
	return Duration(total), nil
}

// Size is a byte count written as "500MB" (decimal units: kB, MB, GB, TB,
// PB), "1GiB" (binary: KiB, MiB, GiB, TiB, PiB), "1024" or "1024B".
type Size int64

// Int64 returns the number of bytes.
func (s Size) Int64() int64 { return int64(s) }

var sizeUnits = []struct {
	name string
	mult int64
}{
	{"PiB", 1 << 50}, {"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"PB", 1e15}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3}, {"B", 1},
}

// String formats s with the largest unit that divides it exactly.
func (s Size) String() string {
	if s == 0 {
		return "0"
	}
	for _, u := range sizeUnits {
		if u.mult > 1 && int64(s)%u.mult == 0 {
			return strconv.FormatInt(int64(s)/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// MarshalText writes s as String does.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a size as ParseSize does.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ErrSize is wrapped by every ParseSize error.
var ErrSize = errors.New("invalid size")

// ParseSize reads "500MB", "1.5GiB", "1024" or "64 KiB". Unit names are
// matched without regard to case ("mb" is MB); K alone is refused as ambiguous.
func ParseSize(str string) (Size, error) {
	s := strings.TrimSpace(str)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%w %q: expected a number of bytes, e.g. 500MB or 1GiB", ErrSize, str)
	}
	num, unit := s[:i], strings.TrimSpace(s[i:])
	mult := int64(1)
	if unit != "" {
		found := false
		for _, u := range sizeUnits {
			if strings.EqualFold(unit, u.name) {
				mult, found = u.mult, true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("%w %q: unknown unit %q (use B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)", ErrSize, str, unit)
		}
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > math.MaxInt64/mult {
			return 0, fmt.Errorf("%w %q: out of range", ErrSize, str)
		}
		return Size(n * mult), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("%w %q", ErrSize, str)
	}
	v := f * float64(mult)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("%w %q: out of range", ErrSize, str)
	}
	return Size(v), nil
}

// Secret is a string that never prints: fmt (every verb), JSON, YAML and text
// marshalling show "[redacted]". It may be written as ${ENV_VAR}; the *_file
// keys read it from a file.
type Secret string

const redacted = "[redacted]"

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString hides the value from %#v.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// Format hides the value from every fmt verb (%s, %v, %x, %d, %q ...).
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' || (verb == 'v' && f.Flag('#')) {
		fmt.Fprint(f, strconv.Quote(s.String()))
		return
	}
	fmt.Fprint(f, s.String())
}

// MarshalJSON writes the redacted form.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(s.String())), nil }

// MarshalText writes the redacted form (encoding/json map keys, yaml, zap).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalYAML writes the redacted form.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// Reveal returns the secret itself, for the one place that needs it.
func (s Secret) Reveal() string { return string(s) }
