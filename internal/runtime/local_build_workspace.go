package runtime

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// outsideWorkspace returns "GOWORK=off" when src is a Go module of its own
// inside a directory tree whose go.work does not use it: a service made
// with `pave new` inside a checkout of Pave (the README's tour) or of any
// workspace. The go command would refuse to build it there ("main module
// does not contain package"); the service is built as its own repository's
// CI builds it. A module the workspace does use keeps the workspace (a
// team's local replacements), and a package without a go.mod of its own
// is built in the module around it. On any doubt it returns nothing and
// go build says what is wrong.
func outsideWorkspace(ctx context.Context, goCmd, src string, env []string) []string {
	if _, err := os.Stat(filepath.Join(src, "go.mod")); err != nil {
		return nil
	}
	run := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, goCmd, args...)
		cmd.Dir, cmd.Env = src, env
		return cmd.Output()
	}
	out, err := run("env", "GOWORK")
	work := strings.TrimSpace(string(out))
	if err != nil || work == "" || work == "off" {
		return nil
	}
	out, err = run("work", "edit", "-json")
	if err != nil {
		return nil
	}
	var w struct {
		Use []struct{ DiskPath string }
	}
	if json.Unmarshal(out, &w) != nil {
		return nil
	}
	self := canonicalDir(src)
	for _, u := range w.Use {
		p := u.DiskPath
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(work), p)
		}
		if canonicalDir(p) == self {
			return nil
		}
	}
	return []string{"GOWORK=off"}
}

func canonicalDir(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	if real, err := filepath.EvalSymlinks(p); err == nil {
		p = real
	}
	return filepath.Clean(p)
}
