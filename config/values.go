package config

import "time"

// Duration is a time.Duration written as "12h", "90s" or with days, "400d".
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Size is a byte count written as "500MB", "1GiB" or a plain number.
type Size int64

// Secret is a string that never prints: %v, logs and errors show "[redacted]".
// It may be written as ${ENV_VAR}; *_file keys read it from a file.
type Secret string

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// Reveal returns the secret itself, for the one place that needs it.
func (s Secret) Reveal() string { return string(s) }
