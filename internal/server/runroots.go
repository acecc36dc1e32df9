package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// RunRoots are the directories under which the API accepts spec.source
// and spec.binary: both make the control plane's machine build and run
// code, so a caller may only point at what the operator allowed (the
// run-roots setting). Each root is kept resolved (symlinks followed).
type RunRoots []string

// NewRunRoots resolves dirs; each must exist.
func NewRunRoots(dirs []string) (RunRoots, error) {
	var rr RunRoots
	for _, d := range dirs {
		if strings.TrimSpace(d) == "" {
			continue
		}
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, fmt.Errorf("run root %q: %w", d, err)
		}
		real, err := filepath.EvalSymlinks(abs)
		if err != nil {
			return nil, fmt.Errorf("run root %q: %w", d, err)
		}
		rr = append(rr, real)
	}
	return rr, nil
}

// Check refuses path unless, resolved, it lies under one of the roots.
// An empty path is nothing to check.
func (rr RunRoots) Check(field, path string) error {
	if path == "" {
		return nil
	}
	if !filepath.IsAbs(path) {
		return &FieldError{Field: field, Err: fmt.Errorf("%q: %w: it must be absolute on the control plane's machine (the CLI makes --source and --binary absolute)", path, errRelativePath)}
	}
	real, err := resolveExisting(filepath.Clean(path))
	if err != nil {
		return &FieldError{Field: field, Err: fmt.Errorf("%q: %w", path, err)}
	}
	for _, root := range rr {
		if within(root, real) {
			return nil
		}
	}
	allowed := strings.Join(rr, string(filepath.ListSeparator))
	if allowed == "" {
		allowed = "none"
	}
	return &FieldError{Field: field, Err: fmt.Errorf("%q (resolved: %s) is outside the run roots (%s): start `pave up` with --run-roots (or PAVE_RUN_ROOTS) listing its directory", path, real, allowed)}
}

// resolveExisting follows symlinks of the longest existing prefix of
// path and appends the rest, so a path not built yet still resolves.
func resolveExisting(path string) (string, error) {
	rest := ""
	for p := path; ; {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(real, rest), nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return path, nil
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

func within(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

type runRootsKey struct{}

// errRelativePath marks a path that cannot be checked at all: the request
// is malformed (422), not refused for where it points (403).
var errRelativePath = errors.New("relative path")

// runPathStatus is the HTTP status for a checkRunPaths error.
func runPathStatus(err error) int {
	if errors.Is(err, errRelativePath) {
		return http.StatusUnprocessableEntity
	}
	return http.StatusForbidden
}

// checkRunPaths checks a request's source and binary against the
// server's run roots; fields are named with prefix ("spec." for a
// release). Handlers call it before they store or run anything.
func checkRunPaths(ctx context.Context, prefix, source, binary string) error {
	rr, _ := ctx.Value(runRootsKey{}).(RunRoots)
	if err := rr.Check(prefix+"source", source); err != nil {
		return err
	}
	return rr.Check(prefix+"binary", binary)
}
