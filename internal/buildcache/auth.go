package buildcache

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Role is what a cache token may do: readers get, writers also put. Action
// results are keyed by what the writer claims, so only trusted builds (CI
// on the main branch) should hold a writer token; everyone else reads.
type Role int

const (
	RoleNone Role = iota
	RoleReader
	RoleWriter
)

func (r Role) String() string {
	switch r {
	case RoleReader:
		return "reader"
	case RoleWriter:
		return "writer"
	}
	return "none"
}

// ErrUnauthorized: no token, or one the server does not know.
var ErrUnauthorized = errors.New("missing or unknown cache token")

// Authorizer maps a bearer token to its role. The tokens file is one
// provider; `pave up` adapts the control plane's tokens (internal/auth).
type Authorizer interface {
	Authorize(ctx context.Context, token string) (Role, error)
}

// FileTokens is a tokens file: one token per line, "ROLE TOKEN" or
// "ROLE sha256:HEX" (the SHA-256 of the token, so the file need not hold
// secrets), with ROLE reader or writer; blank lines and # comments skipped.
type FileTokens struct {
	hashes map[[32]byte]Role
}

// LoadTokens reads a tokens file; errors name the file and line.
func LoadTokens(path string) (*FileTokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cache tokens file: %w", err)
	}
	defer f.Close()
	t := &FileTokens{hashes: map[[32]byte]Role{}}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s:%d: want \"ROLE TOKEN\" or \"ROLE sha256:HEX\" with ROLE reader or writer", path, n)
		}
		var role Role
		switch fields[0] {
		case "reader":
			role = RoleReader
		case "writer":
			role = RoleWriter
		default:
			return nil, fmt.Errorf("%s:%d: role %q: want reader or writer", path, n, fields[0])
		}
		var sum [32]byte
		if h, ok := strings.CutPrefix(fields[1], "sha256:"); ok {
			b, err := hex.DecodeString(h)
			if err != nil || len(b) != 32 {
				return nil, fmt.Errorf("%s:%d: sha256:%.16s…: want 64 hex digits (sha256sum of the token)", path, n, h)
			}
			copy(sum[:], b)
		} else {
			if len(fields[1]) < 16 {
				return nil, fmt.Errorf("%s:%d: token too short (%d characters); use at least 16 random characters, e.g. `openssl rand -hex 24`", path, n, len(fields[1]))
			}
			sum = sha256.Sum256([]byte(fields[1]))
		}
		t.hashes[sum] = role
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cache tokens file %s: %w", path, err)
	}
	if len(t.hashes) == 0 {
		return nil, fmt.Errorf("cache tokens file %s: no tokens; add lines like \"writer TOKEN\" and \"reader TOKEN\"", path)
	}
	return t, nil
}

// Authorize compares the token's SHA-256 with every known one in constant
// time (the file holds a handful of tokens).
func (t *FileTokens) Authorize(_ context.Context, token string) (Role, error) {
	if token == "" {
		return RoleNone, ErrUnauthorized
	}
	sum := sha256.Sum256([]byte(token))
	for h, r := range t.hashes {
		if subtle.ConstantTimeCompare(h[:], sum[:]) == 1 {
			return r, nil
		}
	}
	return RoleNone, ErrUnauthorized
}
