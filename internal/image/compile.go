package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pave-platform/pave/internal/runtime"
)

// mainPackage is what `go list` says about DIR.
type mainPackage struct {
	Dir        string // absolute
	ImportPath string
	ModuleRoot string // the directory of its go.mod, "" outside a module
	Name       string // the binary's name: the import path's last element
}

// goEnv is the environment every go command of a build runs in: the
// caller's (GOCACHEPROG, GOPROXY, GOFLAGS reach go build unchanged), with
// GOWORK=off for a module the surrounding workspace does not use, as
// `pave run` builds it.
func goEnv(ctx context.Context, goCmd, dir string) []string {
	env := os.Environ()
	return append(env, runtime.GoWorkEnv(ctx, goCmd, dir, env)...)
}

// findMainPackage refuses a DIR that holds no main package before any
// compiling, with what to give instead.
func findMainPackage(ctx context.Context, goCmd, dir string, env []string) (mainPackage, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return mainPackage{}, err
	}
	if st, err := os.Stat(abs); err != nil {
		return mainPackage{}, fmt.Errorf("service directory %s: %w", dir, err)
	} else if !st.IsDir() {
		return mainPackage{}, fmt.Errorf("service directory %s is not a directory", dir)
	}
	cmd := exec.CommandContext(ctx, goCmd, "list", "-f", "{{.Name}}\t{{.ImportPath}}\t{{if .Module}}{{.Module.Dir}}{{end}}", ".")
	cmd.Dir, cmd.Env = abs, env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return mainPackage{}, fmt.Errorf("cannot run %q (is Go installed and on PATH?): %w", goCmd, err)
		}
		return mainPackage{}, fmt.Errorf("%s holds no Go package to build: %s\ngive the directory of the service's main package (where its func main is)", dir, strings.TrimSpace(stderr.String()))
	}
	fields := strings.Split(strings.TrimSpace(string(out)), "\t")
	if len(fields) != 3 {
		return mainPackage{}, fmt.Errorf("go list in %s: unexpected output %q", dir, out)
	}
	if fields[0] != "main" {
		return mainPackage{}, fmt.Errorf("%s is package %s, not a main package: give the directory of the service's main package (where its func main is)", dir, fields[0])
	}
	return mainPackage{Dir: abs, ImportPath: fields[1], ModuleRoot: fields[2], Name: path.Base(fields[1])}, nil
}

// compile builds the static, reproducible binary of pkg for p into out:
// no cgo (no libc in the image), -trimpath and an empty build ID (no
// machine paths or per-build bytes), no VCS stamp (the revision goes into
// a label, so a commit that changes no code changes no layer), and no
// symbol table or DWARF (-s -w: a third smaller; panics still print
// function names and lines).
func compile(ctx context.Context, goCmd string, pkg mainPackage, p v1.Platform, out string, env []string) error {
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-buildvcs=false",
		"-ldflags=-buildid= -s -w", "-o", out, ".")
	cmd.Dir = pkg.Dir
	cmd.Env = append(append([]string(nil), env...),
		"CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if p.Architecture == "arm" && p.Variant != "" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(buf.String())
		if len(msg) > 4000 {
			msg = "..." + msg[len(msg)-4000:]
		}
		return fmt.Errorf("go build %s for %s in %s: %v\n%s", pkg.ImportPath, p.String(), pkg.Dir, err, msg)
	}
	return nil
}

// goRoot is the GOROOT of the toolchain that builds, whose
// lib/time/zoneinfo.zip is the scratch base's time zone database.
func goRoot(ctx context.Context, goCmd, dir string, env []string) (string, error) {
	cmd := exec.CommandContext(ctx, goCmd, "env", "GOROOT")
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go env GOROOT: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}
