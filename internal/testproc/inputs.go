package testproc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// The go command caches a test package's result and replays it while the
// test binary, the environment variables the test process read and the
// files it opened or stat'ed (inside its module) are unchanged. It sees
// only what the test process itself touches: a file that a child process
// reads — the sources `go build` compiles into a binary the test runs, a
// script `node` runs — is invisible to it, and a change there would replay
// a stale result. The functions here declare such inputs by touching them
// from the test process: os.Stat of a file records its size and
// modification time, opening a directory records the names, sizes and
// times of its entries (so a new file in a package counts too).
//
// Touches made before testing.M.Run (in TestMain) are not recorded, so
// these are called from tests; BuildPave's Binary declares its inputs the
// first time a test asks for its path.

// Declare records paths as inputs of the running test: a directory with
// its entries, a file with its size and time. A path that does not exist is
// recorded as missing, so its appearing counts as a change.
func Declare(paths ...string) {
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err == nil && fi.IsDir() {
			_, _ = os.ReadDir(p)
		}
	}
}

// GoInputs lists what `go build` of patterns, run in dir, compiles from
// the main modules (the module of dir, and the workspace's): every package
// directory, the files its go:embed lines take, the modules' go.mod and
// go.sum and the workspace's go.work and go.work.sum. Dependencies from
// the module cache are left out: go.sum pins them.
func GoInputs(dir string, patterns ...string) ([]string, error) {
	args := append([]string{"list", "-deps", "-json=Dir,Standard,EmbedFiles,Module"}, patterns...)
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s in %s: %w\n%s", strings.Join(patterns, " "), dir, err, stderr.Bytes())
	}
	type module struct {
		Main  bool
		GoMod string
	}
	seen := map[string]bool{}
	var files []string
	add := func(p string) {
		if p != "" && !seen[p] {
			seen[p] = true
			files = append(files, p)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			Dir        string
			Standard   bool
			EmbedFiles []string
			Module     *module
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list %s: %w", strings.Join(patterns, " "), err)
		}
		if p.Standard || p.Module == nil || !p.Module.Main {
			continue
		}
		add(p.Dir)
		for _, e := range p.EmbedFiles {
			add(filepath.Join(p.Dir, e))
		}
		add(p.Module.GoMod)
		if p.Module.GoMod != "" {
			add(strings.TrimSuffix(p.Module.GoMod, ".mod") + ".sum")
		}
	}
	env := exec.Command("go", "env", "GOWORK")
	env.Dir = dir
	if work, err := env.Output(); err == nil {
		if w := strings.TrimSpace(string(work)); w != "" && w != "off" {
			add(w)
			add(w + ".sum")
		}
	}
	slices.Sort(files)
	return files, nil
}

// DeclareGoBuild declares what `go build` of patterns in dir compiles
// (GoInputs), for a test that builds them itself or runs a program that
// does. The list is computed once per process for each dir and patterns.
func DeclareGoBuild(t TB, dir string, patterns ...string) {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("declaring the test's inputs: %v", err)
	}
	key := abs + "\x00" + strings.Join(patterns, "\x00")
	v, _ := goInputs.LoadOrStore(key, &inputList{})
	l := v.(*inputList)
	l.once.Do(func() { l.files, l.err = GoInputs(abs, patterns...) })
	if l.err != nil {
		t.Fatalf("declaring the test's inputs: %v", l.err)
	}
	Declare(l.files...)
}

// TB is the part of testing.TB DeclareGoBuild uses.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

type inputList struct {
	once  sync.Once
	files []string
	err   error
}

var goInputs sync.Map // dir and patterns → *inputList

// DeclareNodeScripts declares what `node` reads when it runs a test's
// scripts in dir: the scripts (every entry of dir), package.json, the lock
// file and the versions npm installed (node_modules/.package-lock.json).
func DeclareNodeScripts(dir string) {
	Declare(dir,
		filepath.Join(dir, "package.json"),
		filepath.Join(dir, "package-lock.json"),
		filepath.Join(dir, "node_modules", ".package-lock.json"))
}

// ArtifactsDir is where a test leaves files for people to look at
// (screenshots): $PAVE_ARTIFACTS, created if missing, or else a temporary
// directory. They are the test's output, not its input, so the directory
// is made with a system call the go command does not record: an os.Stat
// of it would make its time, which changes whenever any test adds a file
// there, an input of this test's cached result.
func ArtifactsDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("PAVE_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := syscall.Mkdir(dir, 0o755); err != nil && !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("PAVE_ARTIFACTS=%s: %v", dir, err)
	}
	return dir
}
