// Package inventorytest makes real service repositories for the tests and
// benchmarks of the fleet: `pave new` output at a chosen template version,
// committed to Git, optionally hand-edited.
package inventorytest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/scaffold"
	"github.com/pave-platform/pave/internal/testproc"
)

// TB is what the helpers need of a test or benchmark.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// RepoRoot is Pave's checkout.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// Tool finds a real tool on PATH (or in PAVE_TOOLS' bin) or fails saying
// how to get it.
func Tool(t TB, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not on PATH: %s", name, install)
	}
	return p
}

// Git runs git in dir with a fixed identity and fails t on error.
func Git(t TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), GitIdentity()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return strings.TrimSpace(string(out))
}

// GitIdentity is the author and committer the helpers commit as.
func GitIdentity() []string {
	return []string{"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1"}
}

// Service describes a repository to make.
type Service struct {
	Name    string
	Owner   string
	Version int // template version; 0 is the newest
	// KitVersion is the kit required in go.mod (default the scaffold's).
	KitVersion string
	// GoSum runs `go mod tidy` offline, so the service builds.
	GoSum bool
}

// NewService writes the service under parent/Name with `pave new`'s code,
// its kit replaced by this checkout's kit, and commits it on branch main.
func NewService(t TB, parent string, s Service) string {
	t.Helper()
	Tool(t, "git", "install the Debian package git")
	owner := s.Owner
	if owner == "" {
		owner = "payments"
	}
	a := scaffold.Answers{Name: s.Name, Owner: owner, KitVersion: s.KitVersion, KitReplace: filepath.Join(RepoRoot(), "kit"), Clusters: []string{"seoul"}}.WithDefaults()
	dir := filepath.Join(parent, s.Name)
	opts := scaffold.NewOptions{Answers: a, Dir: dir, Version: s.Version}
	if s.GoSum {
		opts.GoCommand = Tool(t, "go", "install Go")
	}
	// The go command compiles the checkout's kit into the service (here or
	// in the code under test): the test cache must see it.
	testproc.DeclareGoBuild(t, a.KitReplace, "./...")
	if _, err := scaffold.New(context.Background(), opts); err != nil {
		t.Fatalf("pave new %s: %v", s.Name, err)
	}
	Git(t, dir, "init", "-q", "-b", "main")
	Git(t, dir, "add", "-A")
	Git(t, dir, "commit", "-qm", "pave new")
	return dir
}

// Edit replaces old by new in dir/file (appending new when old is "") and
// commits the change.
func Edit(t TB, dir, file, old, new string) {
	t.Helper()
	p := filepath.Join(dir, file)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("edit %s: %v", p, err)
	}
	s := string(b)
	if old == "" {
		s += new
	} else {
		if !strings.Contains(s, old) {
			t.Fatalf("edit %s: %q is not in it", p, old)
		}
		s = strings.Replace(s, old, new, 1)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatalf("edit %s: %v", p, err)
	}
	Git(t, dir, "commit", "-qam", "hand edit of "+file)
}

// VulnDB builds a vulnerability database with scripts/vulndb from the
// given OSV entries (ID → JSON) and returns its directory.
func VulnDB(t *testing.T, entries map[string]string) string {
	t.Helper()
	osv := t.TempDir()
	for id, js := range entries {
		if err := os.WriteFile(filepath.Join(osv, id+".json"), []byte(js), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "vulndb")
	testproc.DeclareGoBuild(t, RepoRoot(), "./scripts/vulndb")
	cmd := exec.Command(Tool(t, "go", "install Go"), "run", "./scripts/vulndb", "-osv", osv, "-out", out)
	cmd.Dir = RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the vulnerability database: %v\n%s", err, b)
	}
	return out
}

// DependencyAdvisory is an OSV entry against every version of module
// before fixed (without the leading v).
func DependencyAdvisory(id, module, fixed string) string {
	return `{
  "schema_version": "1.3.1",
  "id": "` + id + `",
  "modified": "2099-01-02T00:00:00Z",
  "published": "2099-01-01T00:00:00Z",
  "summary": "Test advisory against ` + module + `",
  "details": "Made up for the fleet's tests.",
  "affected": [{
    "package": {"name": "` + module + `", "ecosystem": "Go"},
    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "` + fixed + `"}]}]
  }]
}`
}
