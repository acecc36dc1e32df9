package runtime

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrBuild marks a source that did not build.
var ErrBuild = errors.New("build failed")

// Bounds on what a source directory may hold: hashing a home directory by
// mistake should fail fast, not read gigabytes.
const (
	maxSourceFiles = 20000
	maxSourceBytes = 512 << 20
)

// artifact builds d.Source or copies d.Binary into the artifact cache,
// <data>/runtime/artifacts/SERVICE/VERSION/HASH/SERVICE, and returns the
// path and the content hash. The same source (by content) or the same
// binary is never built or copied twice; `go build` itself goes through the
// Go build cache, so a changed file recompiles only its package.
//
// Instances run the cached copy, never the user's file, so rebuilding the
// user's binary does not change what runs, and adoption after a restart can
// check a process's command line against a path that does not move.
func (l *Local) artifact(ctx context.Context, d Deployment) (path, hash string, err error) {
	l.buildMu.Lock()
	defer l.buildMu.Unlock()
	switch {
	case d.Source != "":
		hash, err = l.digests.source(d.Source)
	default:
		hash, err = l.digests.binary(d.Binary)
	}
	if err != nil {
		return "", "", err
	}
	dir := filepath.Join(l.opts.DataDir, "runtime", "artifacts", d.Service, d.Version, hash)
	path = filepath.Join(dir, d.Service)
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o100 != 0 {
		return path, hash, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("artifact cache: %w", err)
	}
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	if d.Source != "" {
		err = l.goBuild(ctx, d.Source, tmp)
	} else {
		err = copyExecutable(d.Binary, tmp)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return "", "", err
	}
	// Rename last: a cache entry exists only when it is complete.
	if err := os.Rename(tmp, path); err != nil {
		return "", "", fmt.Errorf("artifact cache: %w", err)
	}
	return path, hash, nil
}

func (l *Local) goBuild(ctx context.Context, src, out string) error {
	cmd := exec.CommandContext(ctx, l.opts.GoCommand, "build", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = withoutPaveSecrets(os.Environ())
	cmd.Env = append(cmd.Env, outsideWorkspace(ctx, l.opts.GoCommand, src, cmd.Env)...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(buf.String())
		if len(msg) > 4000 {
			msg = "..." + msg[len(msg)-4000:]
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return fmt.Errorf("%w: cannot run %q (is Go installed and on PATH?): %v", ErrBuild, l.opts.GoCommand, err)
		}
		return fmt.Errorf("%w: go build in %s: %v\n%s", ErrBuild, src, err, msg)
	}
	return nil
}

// digestCache remembers the SHA-256 of files by path and identity (device,
// inode, size, modification and change time), so a re-run of the same
// deployment does not read its whole binary or source tree again; a changed
// file changes its identity and is read anew. Callers hold Local.buildMu.
type digestCache struct {
	files map[string]fileDigest
}

type fileDigest struct {
	dev, ino         uint64
	size             int64
	mtimeNs, ctimeNs int64
	sum              [sha256.Size]byte
}

// digest returns the SHA-256 of the file at path, described by fi.
func (c *digestCache) digest(path string, fi fs.FileInfo) ([sha256.Size]byte, error) {
	id := fileDigest{size: fi.Size(), mtimeNs: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino, id.ctimeNs = uint64(st.Dev), st.Ino, st.Ctim.Nano()
	}
	if c.files == nil {
		c.files = map[string]fileDigest{}
	}
	if old, ok := c.files[path]; ok {
		sum := old.sum
		old.sum = [sha256.Size]byte{}
		if old == id {
			return sum, nil
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return [sha256.Size]byte{}, err
	}
	copy(id.sum[:], h.Sum(nil))
	if len(c.files) > maxSourceFiles*4 {
		clear(c.files) // bound the memory of a long-lived control plane
	}
	c.files[path] = id
	return id.sum, nil
}

// source hashes the names and contents of the files under dir, skipping
// hidden entries (.git, editor files).
func (c *digestCache) source(dir string) (string, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", invalid("source", "directory %s does not exist", dir)
	case err != nil:
		return "", invalid("source", "%v", err)
	case !fi.IsDir():
		return "", invalid("source", "%s is not a directory; give the directory of the service's main package", dir)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.go")); len(m) == 0 {
		return "", invalid("source", "%s holds no .go file; give the directory of the service's main package", dir)
	}
	h := sha256.New()
	files, total := 0, int64(0)
	err = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir && strings.HasPrefix(e.Name(), ".") {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !e.Type().IsRegular() {
			return nil
		}
		files++
		if files > maxSourceFiles {
			return fmt.Errorf("more than %d files: is this really a service's source directory?", maxSourceFiles)
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		total += fi.Size()
		if total > maxSourceBytes {
			return fmt.Errorf("more than %d MiB of files: is this really a service's source directory?", maxSourceBytes>>20)
		}
		sum, err := c.digest(p, fi)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s\x00%x\n", filepath.ToSlash(rel), sum)
		return nil
	})
	if err != nil {
		return "", invalid("source", "%s: %v", dir, err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func (c *digestCache) binary(path string) (string, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", invalid("binary", "%s does not exist", path)
	case err != nil:
		return "", invalid("binary", "%v", err)
	case !fi.Mode().IsRegular():
		return "", invalid("binary", "%s is not a regular file", path)
	case fi.Mode()&0o111 == 0:
		return "", invalid("binary", "%s is not executable (chmod +x it)", path)
	}
	sum, err := c.digest(path, fi)
	if err != nil {
		return "", invalid("binary", "%s: %v", path, err)
	}
	return hex.EncodeToString(sum[:])[:16], nil
}

func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return invalid("binary", "%v", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o700)
	if err != nil {
		return fmt.Errorf("artifact cache: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("artifact cache: copy %s: %w", src, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("artifact cache: %w", err)
	}
	return out.Close()
}

// withoutPaveSecrets drops the control plane's own PAVE_* settings (among
// them PAVE_TOKEN) from an environment handed to builds and services.
func withoutPaveSecrets(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PAVE_") || reservedEnv[k] {
			continue
		}
		out = append(out, kv)
	}
	return out
}
