package bulkupgrade

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pave-platform/pave/internal/inventory"
	"github.com/pave-platform/pave/internal/inventory/inventorytest"
	"github.com/pave-platform/pave/internal/scaffold"
)

// fleetCase is one generated service and the outcome it must have.
type fleetCase struct {
	name    string
	version int
	edit    func(t *testing.T, dir string)
	want    string
}

func appendRoute(t *testing.T, dir string) {
	inventorytest.Edit(t, dir, "api.go", "", "\n// Team's note: the greeting route is public.\n")
}

func conflictingDockerfile(t *testing.T, dir string) {
	inventorytest.Edit(t, dir, "Dockerfile", " AS build", "-alpine AS build")
}

func failingTest(t *testing.T, dir string) {
	inventorytest.Edit(t, dir, "api_test.go", "", "\nfunc TestTeamBrokeIt(t *testing.T) { t.Fatal(\"the team broke it\") }\n")
}

func dirtyTree(t *testing.T, dir string) {
	if err := os.WriteFile(filepath.Join(dir, "wip.go"), []byte("package main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// twentyServices makes 20 services of mixed template versions and hand
// edits, in parallel, and the fleet file naming them.
func twentyServices(t *testing.T, root string) []fleetCase {
	var cases []fleetCase
	add := func(n int, prefix string, version int, edit func(*testing.T, string), want string) {
		for i := range n {
			cases = append(cases, fleetCase{fmt.Sprintf("%s-%d", prefix, i), version, edit, want})
		}
	}
	add(5, "plain-v1", 1, nil, Clean)
	add(3, "edited-v2", 2, appendRoute, Clean)
	add(2, "edited-v1", 1, appendRoute, Clean)
	add(4, "conflict", 1, conflictingDockerfile, Conflicts)
	add(3, "broken", 2, failingTest, TestsFailed)
	add(2, "current", 0, nil, UpToDate)
	add(1, "dirty", 1, dirtyTree, Failed)
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir := inventorytest.NewService(t, filepath.Join(root, "services"), inventorytest.Service{Name: c.name, Version: c.version, GoSum: true})
			if c.edit != nil {
				c.edit(t, dir)
			}
		}()
	}
	wg.Wait()
	var fleet strings.Builder
	fleet.WriteString("services:\n")
	for _, c := range cases {
		fmt.Fprintf(&fleet, "  - path: services/%s\n", c.name)
	}
	if err := os.WriteFile(filepath.Join(root, "fleet.yaml"), []byte(fleet.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return cases
}

func TestUpgradeAllOverTwentyServices(t *testing.T) {
	inventorytest.Tool(t, "go", "install Go")
	root := t.TempDir()
	cases := twentyServices(t, root)
	if len(cases) != 20 {
		t.Fatalf("%d services, want 20", len(cases))
	}
	f, err := inventory.Parse(mustRead(t, filepath.Join(root, "fleet.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Sources: &inventory.Sources{Base: root, CacheDir: filepath.Join(root, "cache")}, Jobs: 4, PRDir: filepath.Join(root, "prs")}
	rep, err := Run(context.Background(), f, opts)
	if err != nil {
		t.Fatal(err)
	}
	branch := BranchName(0, "")
	if rep.Branch != branch {
		t.Errorf("branch %q, want %q", rep.Branch, branch)
	}
	commits := map[string]string{}
	for i, c := range cases {
		r := rep.Results[i]
		dir := filepath.Join(root, "services", c.name)
		if r.Service != c.name || r.Outcome != c.want {
			t.Errorf("%s: outcome %q (error %q, failure %q, conflicts %v), want %q", c.name, r.Outcome, r.Error, r.Failure, r.Conflicts, c.want)
			continue
		}
		switch c.want {
		case Clean, Conflicts, TestsFailed:
			commits[c.name] = r.Commit
			// The branch holds the upgrade; the team's checkout is as it was.
			rec := inventorytest.Git(t, dir, "show", branch+":"+scaffold.RecordFile)
			if !strings.Contains(rec, fmt.Sprintf("templateVersion: %d", scaffold.CurrentVersion())) {
				t.Errorf("%s: .pave.yaml on the branch:\n%s", c.name, rec)
			}
			if head := inventorytest.Git(t, dir, "rev-parse", "--abbrev-ref", "HEAD"); head != "main" {
				t.Errorf("%s: the team's checkout moved to %s", c.name, head)
			}
			if st := inventorytest.Git(t, dir, "status", "--porcelain"); st != "" {
				t.Errorf("%s: the team's checkout changed:\n%s", c.name, st)
			}
			pr := string(mustRead(t, r.PRFile))
			if !strings.Contains(pr, c.name) || !strings.Contains(pr, c.want) {
				t.Errorf("%s: pull request description:\n%s", c.name, pr)
			}
		}
		switch c.want {
		case Conflicts:
			if len(r.Conflicts) != 1 || r.Conflicts[0].Path != "Dockerfile" || len(r.Conflicts[0].Lines) == 0 {
				t.Errorf("%s: conflicts %+v, want Dockerfile with marker lines", c.name, r.Conflicts)
			}
			if df := inventorytest.Git(t, dir, "show", branch+":Dockerfile"); !strings.Contains(df, "<<<<<<< ours") {
				t.Errorf("%s: the branch's Dockerfile has no markers:\n%s", c.name, df)
			}
		case TestsFailed:
			if !strings.Contains(r.Failure, "TestTeamBrokeIt") || !strings.Contains(r.Failure, "the team broke it") {
				t.Errorf("%s: first failure %q", c.name, r.Failure)
			}
		case UpToDate:
			if _, err := inventory.Git(context.Background(), dir, "rev-parse", "--verify", "--quiet", "refs/heads/"+branch); err == nil {
				t.Errorf("%s: a branch was left for nothing", c.name)
			}
		case Failed:
			if !strings.Contains(r.Error, "uncommitted changes") {
				t.Errorf("%s: error %q", c.name, r.Error)
			}
		}
	}
	if rep.Summary[Clean] != 10 || rep.Summary[Conflicts] != 4 || rep.Summary[TestsFailed] != 3 {
		t.Errorf("summary %v", rep.Summary)
	}

	// Idempotent: a second run changes nothing more.
	rep2, err := Run(context.Background(), f, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		r := rep2.Results[i]
		want := Unchanged
		if c.want == UpToDate || c.want == Failed {
			want = c.want
		}
		if r.Outcome != want {
			t.Errorf("second run, %s: %q (%s), want %q", c.name, r.Outcome, r.Error, want)
		}
		if old, ok := commits[c.name]; ok && r.Commit != old {
			t.Errorf("second run, %s: branch moved from %s to %s", c.name, old, r.Commit)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
