package bulkupgrade

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/inventory/inventorytest"
)

func TestUntestedPackages(t *testing.T) {
	out := "ok  \texample.com/a\t0.2s\n?   \texample.com/a/cmd/tool\t[no test files]\nok  \texample.com/a/b\t(cached)\n?   \texample.com/a/c\t[no test files]\n"
	if got, want := untestedPackages(out), []string{"example.com/a/cmd/tool", "example.com/a/c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("untestedPackages = %v, want %v", got, want)
	}
	if got := untestedPackages("ok  \texample.com/a\t0.2s\n"); got != nil {
		t.Errorf("all tested: %v", got)
	}
}

// writeModule writes a module from path → content, with Go's own
// toolchain only (no dependency, so no network).
func writeModule(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestCheckWithTheGoCommand runs check on small real modules: go test
// covers the tested packages, go build the others, and tidy runs when
// the change needs it or the go command asks for it.
func TestCheckWithTheGoCommand(t *testing.T) {
	inventorytest.Tool(t, "go", "install Go")
	ctx := context.Background()
	gomod := "module example.com/m\n\ngo 1.22\n"
	tested := map[string]string{
		"go.mod":    gomod,
		"a.go":      "package m\n\nfunc A() int { return 1 }\n",
		"a_test.go": "package m\n\nimport \"testing\"\n\nfunc TestA(t *testing.T) {\n\tif A() != 1 {\n\t\tt.Fatal(\"A\")\n\t}\n}\n",
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range tested {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}

	t.Run("clean: test only, no build, no tidy", func(t *testing.T) {
		steps := Steps{}
		if f := check(ctx, writeModule(t, tested), false, false, steps); f != "" {
			t.Fatalf("failure %q", f)
		}
		if _, ok := steps[StepTest]; !ok {
			t.Errorf("go test did not run: %v", steps)
		}
		for _, s := range []string{StepBuild, StepTidy} {
			if _, ok := steps[s]; ok {
				t.Errorf("%s ran though not needed: %v", s, steps)
			}
		}
	})

	t.Run("an untested package is built", func(t *testing.T) {
		steps := Steps{}
		if f := check(ctx, writeModule(t, with(map[string]string{"tool/main.go": "package main\n\nfunc main() {}\n"})), false, false, steps); f != "" {
			t.Fatalf("failure %q", f)
		}
		if steps[StepBuild] == 0 {
			t.Errorf("the untested package was not built: %v", steps)
		}
	})

	t.Run("an untested package that does not compile is reported", func(t *testing.T) {
		f := check(ctx, writeModule(t, with(map[string]string{"tool/main.go": "package main\n\nfunc main() { undefinedThing() }\n"})), false, false, Steps{})
		if !strings.HasPrefix(f, "go build") || !strings.Contains(f, "undefinedThing") {
			t.Errorf("failure %q, want a go build failure naming undefinedThing", f)
		}
	})

	t.Run("a compile error in a tested package is a build failure", func(t *testing.T) {
		f := check(ctx, writeModule(t, with(map[string]string{"a.go": "package m\n\nfunc A() int { return nope }\n"})), false, false, Steps{})
		if !strings.HasPrefix(f, "go build: ") || !strings.Contains(f, "nope") {
			t.Errorf("failure %q", f)
		}
	})

	t.Run("a failing test names the test", func(t *testing.T) {
		f := check(ctx, writeModule(t, with(map[string]string{"b_test.go": "package m\n\nimport \"testing\"\n\nfunc TestB(t *testing.T) { t.Fatal(\"b broke\") }\n"})), false, false, Steps{})
		if !strings.HasPrefix(f, "go test ./...: --- FAIL: TestB") || !strings.Contains(f, "b broke") {
			t.Errorf("failure %q", f)
		}
	})

	t.Run("an untidy module is tidied when the go command asks", func(t *testing.T) {
		// A file imports a module go.mod does not require (here a local
		// one, so no network): go test says "no required module provides
		// package"; tidy adds the requirement.
		dir := writeModule(t, with(map[string]string{
			"go.mod":     gomod + "\nreplace example.com/dep => ./dep\n",
			"dep/go.mod": "module example.com/dep\n\ngo 1.22\n",
			"dep/dep.go": "package dep\n\nconst One = 1\n",
			"a.go":       "package m\n\nimport \"example.com/dep\"\n\nfunc A() int { return dep.One }\n",
		}))
		steps := Steps{}
		f := check(ctx, dir, false, false, steps)
		b, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
		if f != "" {
			t.Fatalf("failure %q (go.mod now:\n%s)", f, b)
		}
		if _, ok := steps[StepTidy]; !ok {
			t.Errorf("tidy did not run: %v", steps)
		}
		if !strings.Contains(string(b), "require example.com/dep") {
			t.Errorf("go.mod does not require the imported module:\n%s", b)
		}
	})

	t.Run("skip tests builds everything", func(t *testing.T) {
		steps := Steps{}
		if f := check(ctx, writeModule(t, tested), false, true, steps); f != "" {
			t.Fatalf("failure %q", f)
		}
		if _, ok := steps[StepTest]; ok || steps[StepBuild] == 0 {
			t.Errorf("steps %v, want build only", steps)
		}
	})
}

func TestGoInputsChanged(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	inventorytest.Git(t, dir, "init", "-q", "-b", "main")
	for _, f := range []string{"go.mod", "main.go", "Dockerfile"} {
		os.WriteFile(filepath.Join(dir, f), []byte("x\n"), 0o644)
	}
	inventorytest.Git(t, dir, "add", "-A")
	inventorytest.Git(t, dir, "commit", "-qm", "init")
	changed := func() bool {
		t.Helper()
		c, err := goInputsChanged(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if changed() {
		t.Error("clean tree: changed")
	}
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("y\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "deploy"), 0o755)
	os.WriteFile(filepath.Join(dir, "deploy", "x.yaml"), []byte("y\n"), 0o644)
	if changed() {
		t.Error("only Dockerfile and YAML changed: reported a Go input")
	}
	os.MkdirAll(filepath.Join(dir, "internal", "x"), 0o755)
	os.WriteFile(filepath.Join(dir, "internal", "x", "new.go"), []byte("package x\n"), 0o644)
	if !changed() {
		t.Error("a new .go file in a new directory: not reported")
	}
	os.Remove(filepath.Join(dir, "internal", "x", "new.go"))
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("y\n"), 0o644)
	if !changed() {
		t.Error("go.mod changed: not reported")
	}
}

func TestStepsString(t *testing.T) {
	s := Steps{StepTest: 40.2, StepCheckout: 3, StepCommit: 0.4}
	if got, want := s.String(), "checkout 3s, test 40s, commit 0s"; got != want {
		t.Errorf("Steps.String() = %q, want %q", got, want)
	}
}
