package runtime

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A service with a go.mod of its own inside a workspace that does not use
// it (pave new inside a checkout of Pave, as the README's tour does) is
// built on its own; a module the workspace uses is built in it, with its
// replacements.
func TestBuildInsideAForeignWorkspace(t *testing.T) {
	root := t.TempDir()
	write := func(rel, body string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const mainGo = "package main\n\nfunc main() {}\n"
	write("go.work", "go 1.26\n\nuse ./member\n")
	write("member/go.mod", "module example.com/member\n\ngo 1.26\n")
	write("member/main.go", mainGo)
	write("member/cmd/tool/main.go", mainGo) // a package of member, no go.mod
	write("svc/go.mod", "module example.com/svc\n\ngo 1.26\n")
	write("svc/main.go", mainGo)

	ctx := context.Background()
	env := os.Environ()
	if got := outsideWorkspace(ctx, "go", filepath.Join(root, "svc"), env); !slices.Equal(got, []string{"GOWORK=off"}) {
		t.Errorf("a module the workspace does not use: %q, want GOWORK=off", got)
	}
	for _, dir := range []string{"member", "member/cmd/tool"} {
		if got := outsideWorkspace(ctx, "go", filepath.Join(root, dir), env); got != nil {
			t.Errorf("%s, in the workspace: %q, want nothing", dir, got)
		}
	}

	l := newEnv(t).local(t, nil)
	for _, dir := range []string{"svc", "member", "member/cmd/tool"} {
		if err := l.goBuild(ctx, filepath.Join(root, dir), filepath.Join(t.TempDir(), "bin")); err != nil {
			t.Errorf("build %s: %v", dir, err)
		}
	}
}
