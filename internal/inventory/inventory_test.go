package inventory

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/inventory/inventorytest"
	"github.com/pave-platform/pave/internal/scaffold"
)

type fakeReleases struct {
	m   map[string]LastRelease
	err error
}

func (f fakeReleases) LastReleases(context.Context) (map[string]LastRelease, error) {
	return f.m, f.err
}

// A fleet of real repositories: a current one, an old one on a vulnerable
// kit, one by Git URL, one that is not a Pave service, a dirty one and an
// unreachable remote. Each is reported; none stops the others.
func TestInventory(t *testing.T) {
	root := t.TempDir()
	svcs := filepath.Join(root, "services")
	inventorytest.NewService(t, svcs, inventorytest.Service{Name: "orders", GoSum: true, KitVersion: "v0.2.0"})
	old := inventorytest.NewService(t, svcs, inventorytest.Service{Name: "ledger", Owner: "finance", Version: 1, GoSum: true})
	if err := os.MkdirAll(filepath.Join(old, ".github"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(old, ".github", "CODEOWNERS"), []byte("# owners\n* @acme/ledger-team\n"), 0o644)
	inventorytest.Git(t, old, "add", "-A")
	inventorytest.Git(t, old, "commit", "-qm", "owners")
	remote := inventorytest.NewService(t, filepath.Join(root, "remote"), inventorytest.Service{Name: "refunds", Version: 2, GoSum: true, KitVersion: "v0.2.0"})
	dirty := inventorytest.NewService(t, svcs, inventorytest.Service{Name: "search", GoSum: true, KitVersion: "v0.2.0"})
	os.WriteFile(filepath.Join(dirty, "api.go"), []byte("package main\n"), 0o644)
	plain := filepath.Join(svcs, "plain")
	os.MkdirAll(plain, 0o755)
	os.WriteFile(filepath.Join(plain, "go.mod"), []byte("module x\n"), 0o644)

	fleet := filepath.Join(root, "fleet.yaml")
	os.WriteFile(fleet, []byte(`services:
  - path: services/orders
  - path: services/ledger
  - {git: "file://`+remote+`", ref: main}
  - path: services/search
  - path: services/plain
  - {git: "file://`+root+`/nowhere.git"}
`), 0o644)
	f, err := Parse(mustRead(t, fleet))
	if err != nil {
		t.Fatal(err)
	}
	// kit is replaced by this checkout (no version to check), so the
	// advisory is against a real module of kit's graph, at a fix one
	// patch later than the version required.
	dep, depVersion := firstIndirect(t, old)
	db := inventorytest.VulnDB(t, map[string]string{"GO-2099-0100": inventorytest.DependencyAdvisory("GO-2099-0100", dep, "99.0.0")})
	var progress int
	rows := Inventory(context.Background(), f, Options{
		Sources:   &Sources{Base: root, CacheDir: filepath.Join(root, "cache")},
		VulnDB:    db,
		KitLatest: "v0.2.0",
		Releases:  fakeReleases{m: map[string]LastRelease{"orders": {Name: "orders-v7", Version: "v7", Phase: "promoted"}}},
		Progress:  func(done, total int, _ Service) { progress = done },
	})
	if progress != 6 || len(rows) != 6 {
		t.Fatalf("progress %d, %d rows, want 6", progress, len(rows))
	}
	by := map[string]Service{}
	for _, r := range rows {
		by[r.Name] = r
	}
	// Order: unreadable first, then (all equally vulnerable) the oldest.
	if rows[0].Error == "" || rows[1].Error == "" || rows[2].Name != "ledger" {
		t.Errorf("order: %v", names(rows))
	}
	l := by["ledger"]
	if l.TemplateVersion != 1 || l.TemplateBehind != scaffold.CurrentVersion()-1 || l.KitVersion != "v0.1.0" || !l.KitBehind || l.Owner != "@acme/ledger-team" || l.GoVersion != scaffold.DefaultGoVersion {
		t.Errorf("ledger = %+v", l)
	}
	if len(l.Vulns) != 1 || l.Vulns[0].ID != "GO-2099-0100" || l.Vulns[0].Module != dep || l.Vulns[0].Version != depVersion || l.Vulns[0].FixedIn != "v99.0.0" {
		t.Errorf("ledger vulns = %+v (scan error %q)", l.Vulns, l.VulnError)
	}
	o := by["orders"]
	if o.Error != "" || len(o.Vulns) != 1 || o.VulnError != "" || o.TemplateBehind != 0 || o.KitBehind || o.Owner != "payments" {
		t.Errorf("orders = %+v", o)
	}
	if o.LastRelease == nil || o.LastRelease.Phase != "promoted" || by["ledger"].LastRelease != nil {
		t.Errorf("last releases: orders %+v, ledger %+v", o.LastRelease, l.LastRelease)
	}
	r := by["refunds"]
	if r.Error != "" || r.TemplateVersion != 2 || r.Commit == "" || !strings.HasPrefix(r.Source, "file://") {
		t.Errorf("refunds (by Git) = %+v", r)
	}
	if s := by["search"]; !s.Dirty || s.Error != "" {
		t.Errorf("search (dirty) = %+v", s)
	}
	if p := by["plain"]; !strings.Contains(p.Error, "not a Pave service") {
		t.Errorf("plain = %+v", p)
	}
	if n := by["nowhere"]; !strings.Contains(n.Error, "git clone") {
		t.Errorf("nowhere = %+v", n)
	}

	// A second run fetches the existing clone; the control plane being
	// away makes the release unknown, not the run fail.
	remoteEdit(t, remote)
	rows = Inventory(context.Background(), File{Services: f.Services[2:3]}, Options{
		Sources:  &Sources{Base: root, CacheDir: filepath.Join(root, "cache")},
		Releases: fakeReleases{err: errors.New("connection refused")},
	})
	if rows[0].Commit == r.Commit || rows[0].Error != "" || !strings.Contains(rows[0].ReleaseUnknown, "connection refused") {
		t.Errorf("second run = %+v (first commit %s)", rows[0], r.Commit)
	}
	if !strings.Contains(rows[0].VulnError, "no vulnerability database") {
		t.Errorf("without a database: %q", rows[0].VulnError)
	}
}

func remoteEdit(t *testing.T, dir string) {
	inventorytest.Edit(t, dir, "README.md", "", "\nmore\n")
}

func names(rows []Service) []string {
	var n []string
	for _, r := range rows {
		n = append(n, r.Name)
	}
	return n
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func firstIndirect(t *testing.T, dir string) (string, string) {
	for _, line := range strings.Split(string(mustRead(t, filepath.Join(dir, "go.mod"))), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[3] == "indirect" {
			return f[0], f[1]
		}
	}
	t.Fatalf("no indirect requirement in %s/go.mod", dir)
	return "", ""
}

func TestSortVulnerableThenOldest(t *testing.T) {
	rows := []Service{
		{Name: "a", TemplateBehind: 0, KitVersion: "v0.3.0"},
		{Name: "b", TemplateBehind: 2, KitVersion: "v0.3.0"},
		{Name: "c", Vulns: []Vuln{{ID: "GO-1"}}},
		{Name: "d", TemplateBehind: 0, KitVersion: "v0.1.0"},
		{Name: "e", Error: "not a Pave service"},
	}
	Sort(rows)
	if got := strings.Join(names(rows), ""); got != "ecbda" {
		t.Errorf("order %s, want ecbda", got)
	}
}
