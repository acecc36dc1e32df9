package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/apiclient"
	"github.com/pave-platform/pave/internal/release"
)

// A version that exits 2 at start fails its release within seconds (not
// after readyTimeout), and the release status says why: exit status,
// restarts, the last stderr lines and the pave logs command for the rest.
func TestReleaseOfACrashingVersionShowsItsCause(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "crash")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	prog := `package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "loading config")
	fmt.Fprintln(os.Stderr, "fatal: DATABASE_URL is not set")
	os.Exit(2)
}
`
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "crash-bin")
	build := exec.Command("go", "build", "-o", bin, "main.go")
	build.Dir = src
	build.Env = append(os.Environ(), "GO111MODULE=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the crashing program: %v\n%s", err, out)
	}

	p := startUp(t, t.TempDir())
	c := apiclient.New(p.api, "")
	ctx := context.Background()
	spec := release.New("crashy", "v1")
	spec.Spec.Binary = bin
	var r release.Release
	if err := c.Do(ctx, http.MethodPost, "/api/v1/releases?create=true", spec, &r); err != nil {
		t.Fatalf("create: %v", err)
	}
	start := time.Now()
	deadline := start.Add(60 * time.Second)
	for !r.Status.Phase.Terminal() {
		if time.Now().After(deadline) {
			t.Fatalf("the release of a crashing version did not fail within 60s: %+v", r.Status)
		}
		time.Sleep(200 * time.Millisecond)
		if err := c.Do(ctx, http.MethodGet, "/api/v1/releases/"+r.Metadata.Name, nil, &r); err != nil {
			t.Fatal(err)
		}
	}
	f := r.Status.Failure
	if r.Status.Phase != release.Failed || f == nil {
		t.Fatalf("want failed with a failure, got %s: %+v", r.Status.Phase, r.Status)
	}
	if f.ExitCode != 2 || f.Restarts < release.CrashLoopRestarts || !strings.Contains(f.Reason, "exit status 2") {
		t.Errorf("failure %+v: want exit code 2, at least %d restarts, reason naming exit status 2", f, release.CrashLoopRestarts)
	}
	if n := len(f.Stderr); n == 0 || f.Stderr[n-1] != "fatal: DATABASE_URL is not set" {
		t.Errorf("stderr tail %q: want the program's last line last", f.Stderr)
	}
	if !strings.HasPrefix(f.LogsCommand, "pave logs --service crashy") || !strings.Contains(f.LogsCommand, "--version v1") {
		t.Errorf("logs command %q", f.LogsCommand)
	}
	if !strings.Contains(r.Status.Message, "fatal: DATABASE_URL is not set") {
		t.Errorf("message %q lacks the cause", r.Status.Message)
	}
	t.Logf("failed after %s: %s", time.Since(start).Round(100*time.Millisecond), r.Status.Message)
}
