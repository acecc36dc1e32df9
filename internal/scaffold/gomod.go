package scaffold

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// FindKitCheckout looks for a Pave source checkout at or above each start
// directory and returns the absolute path of its kit module, or "" when none
// is found. A generated service then replaces kit with that checkout, so it
// builds offline against the kit being developed beside it.
func FindKitCheckout(starts ...string) string {
	for _, s := range starts {
		if s == "" {
			continue
		}
		dir, err := filepath.Abs(s)
		if err != nil {
			continue
		}
		for {
			if IsKitDir(filepath.Join(dir, "kit")) {
				return filepath.Join(dir, "kit")
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return ""
}

// IsKitDir reports whether dir holds the kit module's go.mod.
func IsKitDir(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`) == KitModule
		}
	}
	return false
}

// goSum writes go.sum (and the indirect requirements in go.mod) offline from
// the module cache, which keeps `pave new` fast and usable without network.
// It runs `go mod tidy`; when the cache lacks what tidy wants (tidy also
// records modules needed only by the tests of dependencies) it falls back to
// recording what building and testing the service itself needs. It returns
// how go.sum was made.
func goSum(ctx context.Context, goCmd, dir string) (string, error) {
	if err := runGo(ctx, goCmd, dir, "mod", "tidy"); err == nil {
		return "generated offline by go mod tidy", nil
	} else if err2 := runGo(ctx, goCmd, dir, "list", "-deps", "-test", "./..."); err2 != nil {
		return "", fmt.Errorf("%w; and go list -deps -test ./... (offline): %w", err, err2)
	}
	return "generated offline for build and test (go mod tidy needs network for test-only modules of dependencies)", nil
}

func runGo(ctx context.Context, goCmd, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = dir
	cmd.Stdout = io.Discard
	// GOPROXY=off cuts the checksum database off too, and a new module's
	// go.sum starts empty: every module comes from the local module cache,
	// which the go command verified against go.sum or the checksum database
	// when it downloaded it, so the hashes tidy records are verified ones
	// (GONOSUMDB=*: no lookups for them).
	// GOTOOLCHAIN=auto: the machine's Go when it is at least the go line
	// written (DefaultGoVersion by default), else exactly that Go from the
	// module cache (GOPROXY=off: never a download). A machine's
	// GOTOOLCHAIN=local would refuse a go line newer than its own Go. Not
	// GOSUMDB=off: the go command then refuses to switch to a cached
	// toolchain (it always checks toolchains against the checksum
	// database, whose answers it keeps in the module cache).
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOPROXY=off", "GONOSUMDB=*", "GOTOOLCHAIN=auto")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %v: %s", strings.Join(args, " "), err, lastLine(stderr.String()))
	}
	return nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
