// Package auth issues and checks the control plane's API tokens. A token is
// "pave_<id>_<secret>"; only a SHA-256 of the secret is stored, and checks
// compare in constant time. Roles are ordered: viewer < deployer < admin;
// ingest (OTLP only) stands apart, below viewer.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pave-platform/pave/internal/state"
)

// Role is what a token may do.
type Role int

const (
	RoleNone Role = iota
	RoleViewer
	RoleDeployer
	RoleAdmin
)

// RoleIngest may only send telemetry to the OTLP receivers. It sits below
// viewer, outside the order, so it reads and changes nothing in the API.
const RoleIngest Role = -1

func (r Role) String() string {
	switch r {
	case RoleViewer:
		return "viewer"
	case RoleDeployer:
		return "deployer"
	case RoleAdmin:
		return "admin"
	case RoleIngest:
		return "ingest"
	}
	return "none"
}

// ParseRole accepts viewer, deployer or admin.
func ParseRole(s string) (Role, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "viewer":
		return RoleViewer, nil
	case "deployer":
		return RoleDeployer, nil
	case "admin":
		return RoleAdmin, nil
	case "ingest":
		return RoleIngest, nil
	}
	return RoleNone, fmt.Errorf("unknown role %q: want viewer, deployer, admin or ingest", s)
}

// ErrInvalidToken is returned for a malformed, unknown or wrong token.
var ErrInvalidToken = errors.New("invalid token")

const kind = "token"

// Token is the stored record; the secret itself is never stored.
type Token struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Hash    string    `json:"hash,omitempty"`
	Created time.Time `json:"created"`
}

// Tokens issues and verifies tokens kept in a state store.
type Tokens struct{ Store state.Store }

// Create issues a token and returns its one-time plaintext.
func (t Tokens) Create(ctx context.Context, name string, role Role) (Token, string, error) {
	if role == RoleNone {
		return Token{}, "", errors.New("a token needs a role: viewer, deployer, admin or ingest")
	}
	id, secret := randomHex(6), randomHex(24)
	tok := Token{ID: id, Name: name, Role: role.String(), Hash: hash(secret), Created: time.Now().UTC()}
	if _, err := state.PutJSON(ctx, t.Store, kind, id, tok, 0); err != nil {
		return Token{}, "", err
	}
	tok.Hash = ""
	return tok, "pave_" + id + "_" + secret, nil
}

// Verify returns the token's record when plaintext is valid.
func (t Tokens) Verify(ctx context.Context, plaintext string) (Token, Role, error) {
	id, secret, ok := split(plaintext)
	if !ok {
		return Token{}, RoleNone, ErrInvalidToken
	}
	var tok Token
	if _, err := state.GetJSON(ctx, t.Store, kind, id, &tok); err != nil {
		if errors.Is(err, state.ErrNotFound) {
			// Hash anyway so an unknown id costs what a known one does.
			_ = subtle.ConstantTimeCompare([]byte(hash(secret)), []byte(hash("")))
			return Token{}, RoleNone, ErrInvalidToken
		}
		return Token{}, RoleNone, err
	}
	if subtle.ConstantTimeCompare([]byte(hash(secret)), []byte(tok.Hash)) != 1 {
		return Token{}, RoleNone, ErrInvalidToken
	}
	role, err := ParseRole(tok.Role)
	if err != nil {
		return Token{}, RoleNone, ErrInvalidToken
	}
	tok.Hash = ""
	return tok, role, nil
}

// List returns every token without hashes.
func (t Tokens) List(ctx context.Context) ([]Token, error) {
	toks, err := state.ListJSON[Token](ctx, t.Store, kind)
	for i := range toks {
		toks[i].Hash = ""
	}
	return toks, err
}

// Revoke deletes a token by id.
func (t Tokens) Revoke(ctx context.Context, id string) error {
	return t.Store.Delete(ctx, kind, id, state.Any)
}

func split(s string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(s, "pave_")
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	return id, secret, ok && id != "" && secret != ""
}

func hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}
