package idp

import (
	"encoding/base32"
	"testing"
	"time"
)

// The SHA-1 vectors of RFC 6238, appendix B.
func TestTOTPRFC6238Vectors(t *testing.T) {
	secret := base32.StdEncoding.EncodeToString([]byte("12345678901234567890"))
	for _, tc := range []struct {
		unix int64
		want string
	}{
		{59, "94287082"},
		{1111111109, "07081804"},
		{1111111111, "14050471"},
		{1234567890, "89005924"},
		{2000000000, "69279037"},
		{20000000000, "65353130"},
	} {
		got, err := TOTP(secret, time.Unix(tc.unix, 0), 8)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("TOTP at %d = %s, want %s", tc.unix, got, tc.want)
		}
	}
	six, _ := TOTP(secret, time.Unix(59, 0), 6)
	if six != "287082" {
		t.Errorf("6-digit TOTP at 59 = %s, want 287082", six)
	}
	if _, err := TOTP("not base32!", time.Now(), 6); err == nil {
		t.Error("bad secret accepted")
	}
}
