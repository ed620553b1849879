package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Version is the record format version written in every record ("v").
const Version = 1

// Type names the kind of event a record describes.
type Type string

// Record types (docs/audit.md describes each field per type).
const (
	TypeLogin          Type = "login"
	TypeLoginFailure   Type = "login_failure"
	TypeLogout         Type = "logout"
	TypeStepUp         Type = "step_up"
	TypeDecision       Type = "decision"
	TypeCompletion     Type = "completion"
	TypeAnomaly        Type = "anomaly"
	TypeAlert          Type = "alert"
	TypeSessionRevoked Type = "session_revoked"
	TypeConfigReload   Type = "config_reload"
	TypePolicyReload   Type = "policy_reload"
	TypeKeyChange      Type = "key_change"
	TypeAuditStart     Type = "audit_start"
	TypeAuditStop      Type = "audit_stop"
)

// Types lists every known record type, in documentation order.
var Types = []Type{TypeLogin, TypeLoginFailure, TypeLogout, TypeStepUp, TypeDecision,
	TypeCompletion, TypeAnomaly, TypeAlert, TypeSessionRevoked, TypeConfigReload,
	TypePolicyReload, TypeKeyChange, TypeAuditStart, TypeAuditStop}

// Decision outcomes.
const (
	OutcomeAllow  = "allow"
	OutcomeDeny   = "deny"
	OutcomeStepUp = "step_up"
)

// Known reports whether t is a record type this version defines.
func (t Type) Known() bool {
	for _, k := range Types {
		if k == t {
			return true
		}
	}
	return false
}

// Record is one audit event. The writer fills Version, Index and (when zero)
// Time; callers fill the fields that belong to the record's Type. Fields are
// encoded in declaration order, so the JSON form is stable. The personal
// fields (Email, Name, ClientIP, UserAgent, Input or InputJSON) are moved
// into Sealed when encryption at rest is on.
type Record struct {
	Version int       `json:"v"`
	Index   int64     `json:"index"`
	Time    time.Time `json:"time"`
	Type    Type      `json:"type"`

	// Who and where.
	Subject   string `json:"sub,omitempty"`
	SessionID string `json:"session_id,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	Route     string `json:"route,omitempty"`
	Method    string `json:"method,omitempty"`
	Host      string `json:"host,omitempty"`
	Path      string `json:"path,omitempty"`

	// Personal fields (encrypted at rest when configured).
	Email     string         `json:"email,omitempty"`
	Name      string         `json:"name,omitempty"`
	ClientIP  string         `json:"client_ip,omitempty"`
	UserAgent string         `json:"user_agent,omitempty"`
	Input     map[string]any `json:"input,omitempty"`
	// InputJSON is the input document already encoded, exactly as
	// encoding/json (HTML escaping off, compact) encodes the equivalent
	// Input map: the writer stores it verbatim in Input's place, so the
	// line is the one Input would give, and a reader gets it back as
	// Input. Set Input or InputJSON, not both. Validate checks only that
	// it is an object ('{' ... '}'); its exactness is the producer's
	// contract (policy.Input.AppendAuditJSON is fuzzed against
	// encoding/json). "{}" is an empty Input: omitted.
	InputJSON []byte `json:"-"`

	// decision
	Outcome  string   `json:"outcome,omitempty"`
	Reasons  []string `json:"reasons,omitempty"`
	Revision string   `json:"revision,omitempty"`

	// completion
	Status     int   `json:"status,omitempty"`
	Bytes      int64 `json:"bytes,omitempty"`
	DurationNS int64 `json:"duration_ns,omitempty"`

	// login / step_up
	MFA *bool    `json:"mfa,omitempty"`
	AMR []string `json:"amr,omitempty"`
	ACR string   `json:"acr,omitempty"`

	// anomaly / alert
	Rule    string   `json:"rule,omitempty"`
	Flags   []string `json:"flags,omitempty"`
	Actions []string `json:"actions,omitempty"`

	// reloads, revocations, key changes, failures
	Result string `json:"result,omitempty"` // ok | failed
	Reason string `json:"reason,omitempty"`
	Actor  string `json:"actor,omitempty"`
	KeyID  string `json:"key_id,omitempty"`
	Error  string `json:"error,omitempty"`

	// Detail carries anything else worth keeping (string keys, JSON values).
	Detail map[string]any `json:"detail,omitempty"`

	// Sealed holds the encrypted personal fields.
	Sealed *Sealed `json:"sealed,omitempty"`

	// Unreadable is set by Scan and Search, given a keyring, on a record
	// whose Sealed fields could not be opened: ErrShredded for a shredded
	// period, otherwise why. Sealed is kept and the personal fields stay
	// empty. Never stored.
	Unreadable error `json:"-"`
}

// Sealed is the encrypted form of a record's personal fields (AES-256-GCM
// under the data key of Period; the additional data is the record index).
type Sealed struct {
	Period string `json:"period"`
	Nonce  []byte `json:"nonce"`
	Data   []byte `json:"data"`
}

// ErrInvalidRecord is returned (wrapped) for records the writer refuses.
var ErrInvalidRecord = errors.New("invalid audit record")

// Validate checks the fields every record of its type needs.
func (r *Record) Validate() error {
	if !r.Type.Known() {
		return fmt.Errorf("%w: unknown type %q", ErrInvalidRecord, r.Type)
	}
	if n := len(r.InputJSON); n > 0 {
		if len(r.Input) > 0 {
			return fmt.Errorf("%w: both input and input JSON set", ErrInvalidRecord)
		}
		if n < 2 || r.InputJSON[0] != '{' || r.InputJSON[n-1] != '}' {
			return fmt.Errorf("%w: input JSON is not an object", ErrInvalidRecord)
		}
	}
	switch r.Type {
	case TypeDecision:
		switch r.Outcome {
		case OutcomeAllow, OutcomeDeny, OutcomeStepUp:
		default:
			return fmt.Errorf("%w: decision outcome %q", ErrInvalidRecord, r.Outcome)
		}
	case TypeLogin, TypeLogout, TypeStepUp:
		if r.Subject == "" {
			return fmt.Errorf("%w: %s without sub", ErrInvalidRecord, r.Type)
		}
	case TypePolicyReload, TypeConfigReload:
		if r.Result != "ok" && r.Result != "failed" {
			return fmt.Errorf("%w: %s result %q", ErrInvalidRecord, r.Type, r.Result)
		}
	}
	return nil
}

// Duration returns DurationNS as a time.Duration.
func (r *Record) Duration() time.Duration { return time.Duration(r.DurationNS) }

// ParseRecord decodes one stored line (without its newline).
func ParseRecord(line []byte) (*Record, error) {
	var r Record
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("parse audit record: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("parse audit record: trailing data")
	}
	if r.Version != Version {
		return nil, fmt.Errorf("parse audit record: unsupported version %d", r.Version)
	}
	return &r, nil
}
