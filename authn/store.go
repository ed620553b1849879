package authn

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrNotFound is returned by Store.Get for an unknown or expired session.
var ErrNotFound = errors.New("authn: session not found")

// Store keeps what must be shared between requests and replicas: session
// records (server mode), the revocation list, and single-use markers for
// login states and SSO codes. Every method must be safe for concurrent use.
// An error means the store could not answer; callers then refuse (fail
// closed).
type Store interface {
	// Get returns the session record with id, or ErrNotFound.
	Get(ctx context.Context, id string) (*Session, error)
	// Put stores s until ttl passes.
	Put(ctx context.Context, s *Session, ttl time.Duration) error
	// Delete removes a session record (no error if absent).
	Delete(ctx context.Context, id string) error
	// Revoke marks session id revoked for ttl (as long as it could live).
	Revoke(ctx context.Context, id string, ttl time.Duration) error
	// RevokeUser revokes every session of subject created at or before at.
	RevokeUser(ctx context.Context, subject string, at time.Time, ttl time.Duration) error
	// Revoked reports whether session id (of subject, created at created)
	// has been revoked by id or by user.
	Revoked(ctx context.Context, id, subject string, created time.Time) (bool, error)
	// UseOnce records key and reports true the first time it is seen
	// within ttl, false afterwards.
	UseOnce(ctx context.Context, key string, ttl time.Duration) (bool, error)
}

// Session is one signed-in session. In cookie mode it is sealed into the
// cookie; in server mode it lives in the Store.
type Session struct {
	ID       string   `json:"id"`
	Host     string   `json:"h,omitempty"` // the host a cookie copy is for
	Subject  string   `json:"sub"`
	Email    string   `json:"em,omitempty"`
	Name     string   `json:"nm,omitempty"`
	Groups   []string `json:"gr,omitempty"`
	Roles    []string `json:"ro,omitempty"`
	AMR      []string `json:"amr,omitempty"`
	ACR      string   `json:"acr,omitempty"`
	AuthTime int64    `json:"at,omitempty"`
	Created  int64    `json:"cr"`
	Expires  int64    `json:"ex"`
	LastSeen int64    `json:"ls"`
	// StepUpTried is when a step-up was last asked for; a later step-up
	// that brings no MFA is not retried before MFA.RetryAfter.
	StepUpTried int64 `json:"su,omitempty"`
	// IDToken is kept for RP-initiated logout (id_token_hint), only on the
	// central host.
	IDToken string `json:"idt,omitempty"`
}

// MemoryStore is a Store in process memory: one replica only, lost at
// restart. Expired entries are dropped as they are met and by a sweep on
// writes.
type MemoryStore struct {
	now func() time.Time

	mu       sync.Mutex
	sessions map[string]memEntry
	revoked  map[string]time.Time // session id -> expiry
	users    map[string]memUser   // subject -> revoked-before
	once     map[string]time.Time
	writes   int
}

type memEntry struct {
	s   Session
	exp time.Time
}

type memUser struct {
	at  time.Time
	exp time.Time
}

// NewMemoryStore returns an empty MemoryStore using the wall clock.
func NewMemoryStore() *MemoryStore { return NewMemoryStoreClock(time.Now) }

// NewMemoryStoreClock returns an empty MemoryStore reading time from now.
func NewMemoryStoreClock(now func() time.Time) *MemoryStore {
	return &MemoryStore{
		now:      now,
		sessions: map[string]memEntry{},
		revoked:  map[string]time.Time{},
		users:    map[string]memUser{},
		once:     map[string]time.Time{},
	}
}

// Get implements Store.
func (m *MemoryStore) Get(_ context.Context, id string) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.sessions[id]
	if !ok || !m.now().Before(e.exp) {
		delete(m.sessions, id)
		return nil, ErrNotFound
	}
	s := e.s
	return &s, nil
}

// Put implements Store.
func (m *MemoryStore) Put(_ context.Context, s *Session, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep()
	m.sessions[s.ID] = memEntry{s: *s, exp: m.now().Add(ttl)}
	return nil
}

// Delete implements Store.
func (m *MemoryStore) Delete(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, id)
	return nil
}

// Revoke implements Store.
func (m *MemoryStore) Revoke(_ context.Context, id string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep()
	m.revoked[id] = m.now().Add(ttl)
	delete(m.sessions, id)
	return nil
}

// RevokeUser implements Store.
func (m *MemoryStore) RevokeUser(_ context.Context, subject string, at time.Time, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep()
	if u, ok := m.users[subject]; ok && u.at.After(at) {
		at = u.at
	}
	m.users[subject] = memUser{at: at, exp: m.now().Add(ttl)}
	return nil
}

// Revoked implements Store.
func (m *MemoryStore) Revoked(_ context.Context, id, subject string, created time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if exp, ok := m.revoked[id]; ok && now.Before(exp) {
		return true, nil
	}
	if u, ok := m.users[subject]; ok && now.Before(u.exp) && !created.After(u.at) {
		return true, nil
	}
	return false, nil
}

// UseOnce implements Store.
func (m *MemoryStore) UseOnce(_ context.Context, key string, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep()
	now := m.now()
	if exp, ok := m.once[key]; ok && now.Before(exp) {
		return false, nil
	}
	m.once[key] = now.Add(ttl)
	return true, nil
}

// sweep drops expired entries every 256 writes; m.mu is held.
func (m *MemoryStore) sweep() {
	m.writes++
	if m.writes%256 != 0 {
		return
	}
	now := m.now()
	for k, e := range m.sessions {
		if !now.Before(e.exp) {
			delete(m.sessions, k)
		}
	}
	for k, exp := range m.revoked {
		if !now.Before(exp) {
			delete(m.revoked, k)
		}
	}
	for k, u := range m.users {
		if !now.Before(u.exp) {
			delete(m.users, k)
		}
	}
	for k, exp := range m.once {
		if !now.Before(exp) {
			delete(m.once, k)
		}
	}
}
