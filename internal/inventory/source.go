package inventory

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Checkout is an entry brought onto disk.
type Checkout struct {
	Entry Entry
	// Dir is the service's working tree.
	Dir string
	// Cloned is true when Dir is a clone in the cache (pave owns it, so
	// it may be reset), false for a path entry (the team's tree).
	Cloned bool
	// Commit is the checked-out commit, when Dir is in Git.
	Commit string
}

// Sources brings fleet entries onto disk: paths are resolved against the
// fleet file's directory, Git URLs cloned into CacheDir (one clone per URL,
// fetched again on each use).
type Sources struct {
	// Base is the directory relative paths are resolved against.
	Base string
	// CacheDir holds the clones of Git entries.
	CacheDir string
	mu       sync.Mutex
	locks    map[string]*sync.Mutex
}

// DefaultCacheDir is where clones go unless told otherwise.
func DefaultCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "pave", "fleet")
}

func (s *Sources) lock(key string) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.locks == nil {
		s.locks = map[string]*sync.Mutex{}
	}
	if s.locks[key] == nil {
		s.locks[key] = &sync.Mutex{}
	}
	return s.locks[key]
}

// Checkout brings e onto disk. A path must exist and be a directory; a Git
// URL is cloned (or fetched) and its ref checked out, detached, in a clone
// only pave uses.
func (s *Sources) Checkout(ctx context.Context, e Entry) (Checkout, error) {
	if e.Path != "" {
		dir := e.Path
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(s.Base, dir)
		}
		fi, err := os.Stat(dir)
		if err != nil {
			return Checkout{Entry: e, Dir: dir}, fmt.Errorf("path %s: %w", e.Path, err)
		}
		if !fi.IsDir() {
			return Checkout{Entry: e, Dir: dir}, fmt.Errorf("path %s is not a directory", e.Path)
		}
		c := Checkout{Entry: e, Dir: dir}
		c.Commit, _ = Git(ctx, dir, "rev-parse", "HEAD")
		return c, nil
	}
	sum := sha256.Sum256([]byte(e.Git))
	name := e.Label() + "-" + hex.EncodeToString(sum[:6])
	dir := filepath.Join(s.CacheDir, name)
	l := s.lock(dir)
	l.Lock()
	defer l.Unlock()
	c := Checkout{Entry: e, Dir: dir, Cloned: true}
	if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
		if err := os.MkdirAll(s.CacheDir, 0o755); err != nil {
			return c, err
		}
		// Cloned beside, then renamed: an interrupted clone leaves no
		// half repository that a later run would take for a whole one.
		tmp, err := os.MkdirTemp(s.CacheDir, "."+name+".clone-")
		if err != nil {
			return c, err
		}
		defer os.RemoveAll(tmp)
		if _, err := Git(ctx, s.CacheDir, "clone", "--quiet", "--no-checkout", "--", e.Git, tmp); err != nil {
			return c, fmt.Errorf("git clone %s: %w", e.Git, err)
		}
		if err := os.Rename(tmp, dir); err != nil {
			return c, err
		}
	} else if _, err := Git(ctx, dir, "fetch", "--quiet", "--prune", "origin"); err != nil {
		return c, fmt.Errorf("git fetch %s: %w", e.Git, err)
	}
	ref := "origin/HEAD"
	if e.Ref != "" {
		ref = e.Ref
		// A branch is read from the remote, not from a stale local one.
		if _, err := Git(ctx, dir, "rev-parse", "--verify", "--quiet", "refs/remotes/origin/"+e.Ref); err == nil {
			ref = "origin/" + e.Ref
		}
	}
	commit, err := Git(ctx, dir, "rev-parse", "--verify", "--quiet", ref+"^{commit}")
	if err != nil {
		return c, fmt.Errorf("ref %q is not a branch, tag or commit of %s", e.Ref, e.Git)
	}
	if _, err := Git(ctx, dir, "checkout", "--quiet", "--force", "--detach", commit); err != nil {
		return c, err
	}
	if _, err := Git(ctx, dir, "clean", "-qfdx"); err != nil {
		return c, err
	}
	c.Commit = commit
	return c, nil
}

// Git runs git in dir and returns its trimmed standard output; the error
// carries git's last line of standard error.
func Git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	// Never ask for a password on a terminal: an unreachable or private
	// remote fails at once and is reported for its service.
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=true", "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		// git's reason is its fatal: or error: line; hints follow it.
		for _, l := range strings.Split(msg, "\n") {
			if strings.HasPrefix(l, "fatal: ") || strings.HasPrefix(l, "error: ") {
				msg = strings.TrimPrefix(strings.TrimPrefix(l, "fatal: "), "error: ")
				break
			}
		}
		if msg == "" {
			return "", fmt.Errorf("git %s: %w", args[0], err)
		}
		return "", fmt.Errorf("git %s: %s", args[0], msg)
	}
	return strings.TrimSpace(stdout.String()), nil
}
