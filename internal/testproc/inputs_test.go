package testproc

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDeclaredBuildInputsDefeatTheTestCache runs the real go command on a
// small module whose two test packages each build and run a program of
// the module, as cmd/pave's tests build and run pave: only one of them
// declares the program's sources (DeclareGoBuild, this package's code).
// After a change to the program's sources, the go command must run the
// declaring package again and would replay the other's stale result: the
// hole the declarations close.
func TestDeclaredBuildInputsDefeatTheTestCache(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test three times on a small module")
	}
	t.Parallel()
	src, err := os.ReadFile("inputs.go")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	runTool := `
	bin := filepath.Join(t.TempDir(), "tool")
	if out, err := exec.Command("go", "build", "-o", bin, "../tool").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the tool says %s", out)
}
`
	files := map[string]string{
		"go.mod":           "module example.com/fx\n\ngo 1.22\n",
		"tool/main.go":     "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Print(msg) }\n",
		"tool/msg.go":      "package main\n\nconst msg = \"v1\"\n",
		"inputs/inputs.go": strings.Replace(string(src), "package testproc", "package inputs", 1),
		"declared/d.go":    "package declared\n",
		"undeclared/u.go":  "package undeclared\n",
		"declared/d_test.go": `package declared

import (
	"os/exec"
	"path/filepath"
	"testing"

	"example.com/fx/inputs"
)

func TestTool(t *testing.T) {
	inputs.DeclareGoBuild(t, "..", "./tool")` + runTool,
		"undeclared/u_test.go": `package undeclared

import (
	"os/exec"
	"path/filepath"
	"testing"
)

func TestTool(t *testing.T) {` + runTool,
	}
	// Files as old as a checkout's: the go command caches no result that
	// read a file younger than two seconds.
	past := time.Now().Add(-time.Hour)
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, past, past); err != nil {
			t.Fatal(err)
		}
		past = past.Add(time.Second) // a rewrite gets a time of its own
	}
	for name, content := range files {
		write(name, content)
	}
	for _, d := range []string{"tool", "inputs", "declared", "undeclared", "."} {
		os.Chtimes(filepath.Join(dir, d), past, past)
	}
	cached := func(step string) map[string]bool {
		t.Helper()
		cmd := exec.Command("go", "test", "./declared", "./undeclared")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=", "GOPROXY=off")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: go test: %v\n%s", step, err, out)
		}
		got := map[string]bool{}
		for _, m := range regexp.MustCompile(`(?m)^ok\s+example\.com/fx/(\w+)\s+(.*)$`).FindAllStringSubmatch(string(out), -1) {
			got[m[1]] = strings.Contains(m[2], "(cached)")
		}
		if len(got) != 2 {
			t.Fatalf("%s: want an ok line for each package:\n%s", step, out)
		}
		return got
	}
	if got := cached("first run"); got["declared"] || got["undeclared"] {
		t.Fatalf("first run: a result came from the cache: %v", got)
	}
	if got := cached("same sources"); !got["declared"] || !got["undeclared"] {
		t.Fatalf("nothing changed, yet a package ran again (cached: %v)", got)
	}
	write("tool/msg.go", "package main\n\nconst msg = \"v2\"\n")
	got := cached("tool/msg.go changed")
	if got["declared"] {
		t.Error("the tool's source changed, yet the declaring package's result came from the cache")
	}
	if !got["undeclared"] {
		t.Error("the package that declares nothing ran again: this test no longer shows what declaring changes")
	}
	cached("settle") // the declaring package's new result is cached now
	write("tool/more.go", "package main\n\nfunc init() {}\n")
	if got := cached("tool/more.go added"); got["declared"] {
		t.Error("a file was added to the tool, yet the declaring package's result came from the cache")
	}
}
