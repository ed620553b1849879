package authn

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Identity is who is signed in and how strongly. The zero value is the
// anonymous caller.
type Identity struct {
	Subject   string
	Email     string
	Name      string
	Groups    []string
	Roles     []string
	SessionID string
	// MFA: amr intersects MFA.AMRAny or acr is in MFA.ACRAny, and auth_time
	// is within MFA.MaxAge.
	MFA      bool
	AMR      []string
	ACR      string
	AuthTime time.Time
}

// Authenticated reports whether the identity belongs to a signed-in user.
func (id Identity) Authenticated() bool { return id.Subject != "" }

// EvaluateMFA reports whether amr/acr/authTime satisfy the MFA options at
// time now. A missing auth_time never satisfies a max_age.
func EvaluateMFA(o MFAOptions, amr []string, acr string, authTime, now time.Time) bool {
	strong := false
	for _, v := range amr {
		if slices.Contains(o.AMRAny, v) {
			strong = true
			break
		}
	}
	if !strong && acr != "" && slices.Contains(o.ACRAny, acr) {
		strong = true
	}
	if !strong {
		return false
	}
	if o.MaxAge > 0 {
		if authTime.IsZero() || now.Sub(authTime) > o.MaxAge || authTime.After(now.Add(5*time.Minute)) {
			return false
		}
	}
	return true
}

// ClaimPath looks a dotted path ("realm_access.roles") up in decoded JSON
// claims. A key that itself contains dots is found before descending.
func ClaimPath(claims map[string]any, path string) (any, bool) {
	if path == "" {
		return nil, false
	}
	if v, ok := claims[path]; ok {
		return v, true
	}
	head, rest, found := strings.Cut(path, ".")
	if !found {
		return nil, false
	}
	v, ok := claims[head]
	if !ok {
		return nil, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	return ClaimPath(m, rest)
}

// claimStrings reads a claim as a list of strings: a JSON array of strings,
// or one string (space or comma separated lists are kept whole).
func claimStrings(claims map[string]any, path string) ([]string, error) {
	v, ok := ClaimPath(claims, path)
	if !ok || v == nil {
		return nil, nil
	}
	switch t := v.(type) {
	case string:
		if t == "" {
			return nil, nil
		}
		return []string{t}, nil
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("claim %s: element of type %T, want string", path, e)
			}
			out = append(out, s)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("claim %s: type %T, want string list", path, v)
	}
}

func claimString(claims map[string]any, path string) (string, error) {
	v, ok := ClaimPath(claims, path)
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("claim %s: type %T, want string", path, v)
	}
	return s, nil
}

// claimTime reads a NumericDate claim.
func claimTime(claims map[string]any, name string) (time.Time, error) {
	v, ok := claims[name]
	if !ok || v == nil {
		return time.Time{}, nil
	}
	f, ok := v.(float64)
	if !ok || f < 0 || f > 1e11 {
		return time.Time{}, fmt.Errorf("claim %s: not a NumericDate", name)
	}
	return time.Unix(int64(f), 0), nil
}

// profile is the identity part of a session, read from verified claims.
type profile struct {
	Subject  string
	Email    string
	Name     string
	Groups   []string
	Roles    []string
	AMR      []string
	ACR      string
	AuthTime time.Time
}

// readProfile maps verified ID-token (and userinfo) claims to a profile.
func readProfile(names ClaimNames, claims map[string]any) (profile, error) {
	var p profile
	var err error
	if p.Subject, err = claimString(claims, "sub"); err != nil {
		return p, err
	}
	if p.Subject == "" {
		return p, fmt.Errorf("claim sub: missing")
	}
	if p.Email, err = claimString(claims, names.Email); err != nil {
		return p, err
	}
	if p.Name, err = claimString(claims, names.Name); err != nil {
		return p, err
	}
	if p.Groups, err = claimStrings(claims, names.Groups); err != nil {
		return p, err
	}
	if p.Roles, err = claimStrings(claims, names.Roles); err != nil {
		return p, err
	}
	if p.AMR, err = claimStrings(claims, "amr"); err != nil {
		return p, err
	}
	if p.ACR, err = claimString(claims, "acr"); err != nil {
		return p, err
	}
	if p.AuthTime, err = claimTime(claims, "auth_time"); err != nil {
		return p, err
	}
	return p, nil
}
