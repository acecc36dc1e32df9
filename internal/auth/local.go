package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LocalTokenFile is the name of the admin token file in a data directory.
const LocalTokenFile = "admin.token"

// EnsureLocalAdmin makes sure dataDir holds a valid admin token in
// LocalTokenFile (mode 0600) and returns its path. The first start
// creates it; later starts keep it while it still verifies, so the CLI
// and scripts on this machine keep working across restarts. A revoked or
// foreign token is replaced.
func (t Tokens) EnsureLocalAdmin(ctx context.Context, dataDir string) (string, error) {
	path := filepath.Join(dataDir, LocalTokenFile)
	if b, err := os.ReadFile(path); err == nil {
		if _, role, err := t.Verify(ctx, strings.TrimSpace(string(b))); err == nil && role == RoleAdmin {
			return path, os.Chmod(path, 0o600)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("local admin token %s: %w", path, err)
	}
	_, secret, err := t.Create(ctx, "local-admin", RoleAdmin)
	if err != nil {
		return "", fmt.Errorf("local admin token: %w", err)
	}
	tmp, err := os.CreateTemp(dataDir, ".admin.token-*")
	if err != nil {
		return "", fmt.Errorf("local admin token: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err == nil {
		_, err = tmp.WriteString(secret + "\n")
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
	}
	if err != nil {
		tmp.Close()
		return "", fmt.Errorf("local admin token %s: %w", path, err)
	}
	return path, nil
}

// ReadLocalToken reads a token file written by EnsureLocalAdmin. It
// refuses a file others may read, which would mean the secret leaked.
func ReadLocalToken(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("token file %s has mode %v: others may read it; run `chmod 600 %s` (and consider revoking the token)", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// LocalKeyFile is the name of the local-proof key in a data directory.
const LocalKeyFile = "local.key"

// EnsureLocalKey returns the data directory's local-proof key, creating
// it (32 random bytes, hex, mode 0600) on first use. Only processes with
// this user's rights on the control plane's machine can read it, so an
// HMAC made with it proves a request comes from the local CLI of the
// operator, not from the API alone (used by `pave cluster add
// --allow-exec`).
func EnsureLocalKey(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, LocalKeyFile)
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 64 {
		return []byte(strings.TrimSpace(string(b))), nil
	}
	key := randomHex(32)
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("local key %s: %w", path, err)
	}
	return []byte(key), nil
}

// ReadLocalKey reads a local-proof key file, as the CLI does.
func ReadLocalKey(path string) ([]byte, error) {
	tok, err := ReadLocalToken(path)
	return []byte(tok), err
}

// LocalProof is the HMAC-SHA256 of parts (NUL-separated) under key.
func LocalProof(key []byte, parts ...string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(m.Sum(nil))
}

// VerifyLocalProof checks a proof in constant time.
func VerifyLocalProof(key []byte, proof string, parts ...string) bool {
	return len(key) > 0 && hmac.Equal([]byte(LocalProof(key, parts...)), []byte(proof))
}
