package authn

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Options configures an Authn. The proxy builds it from its config; zero
// values get the defaults documented on each field.
type Options struct {
	// Issuer is the OIDC issuer URL (discovery at Issuer/.well-known/...).
	Issuer       string
	ClientID     string
	ClientSecret string
	// Scopes requested; "openid" is always included. Default: openid email profile.
	Scopes []string
	// AllowedAlgs are the ID-token signing algorithms accepted. Default:
	// RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA. "none" and
	// HS* are refused by New.
	AllowedAlgs []string
	// HTTPClient talks to the IdP. Default: a client with a 10 s timeout.
	HTTPClient *http.Client

	// ExternalURL is where /.gatehouse/* lives on the central host; the
	// callback is ExternalURL + /.gatehouse/callback.
	ExternalURL string
	// Hosts are the route hosts Gatehouse serves (host or host:port). The
	// central host is always added. Return URLs must be on one of them.
	Hosts []string

	Claims  ClaimNames
	MFA     MFAOptions
	Session SessionOptions
	// Store keeps revocations, single-use markers and, in server mode, the
	// session records. Default: a MemoryStore.
	Store Store
	// ServerSide keeps session records in Store; the cookie only names them.
	ServerSide bool

	Headers   HeaderNames
	Assertion AssertionOptions

	// Events receives login, login_failure, logout, step_up and
	// session_revoked events. An error makes the action fail. Default: none.
	Events func(ctx context.Context, ev Event) error
	// Authorize judges forward-auth requests after authentication (policy).
	// Default: every authenticated user is allowed.
	Authorize func(ctx context.Context, r *http.Request, route Route, id Identity) (Verdict, error)
	// ForwardAuthTrusted says whether a forward-auth caller's
	// X-Forwarded-*/X-Original-URL headers are believed. Default: only
	// loopback callers.
	ForwardAuthTrusted func(r *http.Request) bool
	// RouteFor finds the route a forward-auth request is for. Default: a
	// route named after the host, MFA optional.
	RouteFor func(host, path string) (Route, bool)
	// NormalizePath turns a forward-auth request's escaped path into the
	// one the upstream will resolve, or refuses it as ambiguous (the
	// proxy's normaliser). Default: the path must already be plain —
	// no dot segment, escape, doubled slash or backslash.
	NormalizePath func(escaped string) (string, error)

	// ClientIP is the client address recorded in events. Default: the
	// peer address of the request.
	ClientIP func(r *http.Request) string

	Clock  func() time.Time
	Logger *slog.Logger
}

// ClaimNames names the claims (dotted paths allowed, e.g.
// "realm_access.roles") that carry each identity field.
type ClaimNames struct {
	Groups string // default "groups"
	Roles  string // default "roles"
	Email  string // default "email"
	Name   string // default "name"
}

// MFAOptions says what counts as multi-factor authentication.
type MFAOptions struct {
	AMRAny    []string      // RFC 8176 values; default mfa otp hwk swk fpt sms
	ACRAny    []string      // accepted acr values
	StepUpACR string        // acr_values sent when asking for MFA
	MaxAge    time.Duration // MFA older than this does not count; 0: no limit
	// RetryAfter is how long after a step-up that yielded no MFA the user
	// sees the "MFA unavailable" page instead of another attempt. Default 10m.
	RetryAfter time.Duration
}

// SessionOptions configures the session cookie.
type SessionOptions struct {
	Cookie string // base name; default "_gatehouse" (prefixed __Host- over HTTPS)
	// Keys seal cookies and codes: the first seals, all open (rotation).
	// Each must have at least 32 bytes.
	Keys        [][]byte
	Lifetime    time.Duration // default 12h
	IdleTimeout time.Duration // default 1h; 0 after defaults means none
}

// HeaderNames are the upstream identity headers.
type HeaderNames struct {
	User   string // default X-Gatehouse-User
	Email  string // default X-Gatehouse-Email
	Groups string // default X-Gatehouse-Groups
	Roles  string // default X-Gatehouse-Roles
}

// AssertionOptions configures the signed JWT sent upstream.
type AssertionOptions struct {
	Header string            // default X-Gatehouse-Assertion
	Key    *ecdsa.PrivateKey // P-256; default: a key made at start (single replica only)
	TTL    time.Duration     // default 30s, at most 60s
}

// Route is what authn needs to know of the route a request is for.
type Route struct {
	Name        string
	Host        string
	Public      bool
	MFARequired bool
	// DeferStepUp: the caller enforces MFA itself after authorisation (and
	// calls StepUp); Authenticate then only asks for MFA at a first login.
	DeferStepUp bool
}

// Verdict is the forward-auth authorisation answer.
type Verdict struct {
	Allow      bool
	RequireMFA bool
	// StepUp asks for a fresh sign-in with MFA even from a session that
	// has MFA (an anomaly's step_up).
	StepUp bool
	Reason string
}

// Event types reported through Options.Events.
const (
	EventLogin          = "login"
	EventLoginFailure   = "login_failure"
	EventLogout         = "logout"
	EventStepUp         = "step_up"
	EventSessionRevoked = "session_revoked"
)

// Event is one authentication fact for the audit log.
type Event struct {
	Type      string
	Time      time.Time
	Host      string
	ClientIP  string
	Subject   string
	Email     string
	SessionID string
	// Outcome: "ok", "failed"; for step_up "mfa" or "no_mfa".
	Outcome string
	Reason  string
	Fields  map[string]any
}

// Defaults for Options.
const (
	DefaultCookie      = "_gatehouse"
	DefaultLifetime    = 12 * time.Hour
	DefaultIdleTimeout = time.Hour
	DefaultAssertTTL   = 30 * time.Second
	MaxAssertTTL       = 60 * time.Second
	loginTTL           = 10 * time.Minute
	ssoCodeTTL         = 60 * time.Second
)

var (
	defaultAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
	defaultAMR  = []string{"mfa", "otp", "hwk", "swk", "fpt", "sms"}
)

// ErrConfig marks invalid Options.
var ErrConfig = errors.New("authn: invalid options")

func (o *Options) withDefaults() (Options, error) {
	c := *o
	if c.Issuer == "" || c.ClientID == "" {
		return c, fmt.Errorf("%w: issuer and client_id are required", ErrConfig)
	}
	ext, err := url.Parse(c.ExternalURL)
	if err != nil || (ext.Scheme != "https" && ext.Scheme != "http") || ext.Host == "" || ext.User != nil {
		return c, fmt.Errorf("%w: external_url %q must be an absolute http(s) URL", ErrConfig, c.ExternalURL)
	}
	if len(c.Scopes) == 0 {
		c.Scopes = []string{"openid", "email", "profile"}
	}
	if !slices.Contains(c.Scopes, "openid") {
		c.Scopes = append([]string{"openid"}, c.Scopes...)
	}
	if len(c.AllowedAlgs) == 0 {
		c.AllowedAlgs = defaultAlgs
	}
	for _, a := range c.AllowedAlgs {
		if !slices.Contains(defaultAlgs, a) {
			return c, fmt.Errorf("%w: signing algorithm %q is not allowed (asymmetric algorithms only)", ErrConfig, a)
		}
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.Claims.Groups == "" {
		c.Claims.Groups = "groups"
	}
	if c.Claims.Roles == "" {
		c.Claims.Roles = "roles"
	}
	if c.Claims.Email == "" {
		c.Claims.Email = "email"
	}
	if c.Claims.Name == "" {
		c.Claims.Name = "name"
	}
	if len(c.MFA.AMRAny) == 0 && len(c.MFA.ACRAny) == 0 {
		c.MFA.AMRAny = defaultAMR
	}
	if c.MFA.RetryAfter <= 0 {
		c.MFA.RetryAfter = 10 * time.Minute
	}
	if c.Session.Cookie == "" {
		c.Session.Cookie = DefaultCookie
	}
	if strings.ContainsAny(c.Session.Cookie, " ;,=\t\r\n") {
		return c, fmt.Errorf("%w: cookie name %q", ErrConfig, c.Session.Cookie)
	}
	if c.Session.Lifetime <= 0 {
		c.Session.Lifetime = DefaultLifetime
	}
	if c.Session.IdleTimeout < 0 {
		c.Session.IdleTimeout = 0
	} else if c.Session.IdleTimeout == 0 {
		c.Session.IdleTimeout = DefaultIdleTimeout
	}
	if len(c.Session.Keys) == 0 {
		return c, fmt.Errorf("%w: at least one session key is required", ErrConfig)
	}
	for i, k := range c.Session.Keys {
		if len(k) < 32 {
			return c, fmt.Errorf("%w: session key %d has %d bytes, want at least 32", ErrConfig, i+1, len(k))
		}
	}
	if c.Store == nil {
		if c.ServerSide {
			return c, fmt.Errorf("%w: server-side sessions need a Store", ErrConfig)
		}
		c.Store = NewMemoryStore()
	}
	if c.Headers.User == "" {
		c.Headers.User = "X-Gatehouse-User"
	}
	if c.Headers.Email == "" {
		c.Headers.Email = "X-Gatehouse-Email"
	}
	if c.Headers.Groups == "" {
		c.Headers.Groups = "X-Gatehouse-Groups"
	}
	if c.Headers.Roles == "" {
		c.Headers.Roles = "X-Gatehouse-Roles"
	}
	if c.Assertion.Header == "" {
		c.Assertion.Header = "X-Gatehouse-Assertion"
	}
	if c.Assertion.TTL <= 0 {
		c.Assertion.TTL = DefaultAssertTTL
	}
	if c.Assertion.TTL > MaxAssertTTL {
		return c, fmt.Errorf("%w: assertion ttl %s exceeds %s", ErrConfig, c.Assertion.TTL, MaxAssertTTL)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ClientIP == nil {
		c.ClientIP = clientIP
	}
	if c.ForwardAuthTrusted == nil {
		c.ForwardAuthTrusted = loopbackCaller
	}
	if c.NormalizePath == nil {
		c.NormalizePath = plainPath
	}
	return c, nil
}

// errAmbiguousPath is plainPath's refusal.
var errAmbiguousPath = errors.New("ambiguous path")

// plainPath is the default NormalizePath: a path that needs no
// normalising passes as it is; anything a second parser could read
// differently is refused (fail closed).
func plainPath(escaped string) (string, error) {
	if !strings.HasPrefix(escaped, "/") || strings.ContainsAny(escaped, "%\\;") || strings.Contains(escaped, "//") {
		return "", errAmbiguousPath
	}
	for seg := range strings.SplitSeq(escaped, "/") {
		if seg == "." || seg == ".." {
			return "", errAmbiguousPath
		}
	}
	return escaped, nil
}
