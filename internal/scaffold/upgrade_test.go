package scaffold

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/scaffold/merge"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return run(t, dir, []string{"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com"}, "git", args...)
}

// newAtV1 makes a service at template version 1, committed to git.
func newAtV1(t *testing.T) (string, Answers) {
	t.Helper()
	tool(t, "git", "install the Debian package git")
	a := testAnswers()
	dir := filepath.Join(t.TempDir(), "orders")
	if _, err := New(context.Background(), NewOptions{Answers: a, Dir: dir, Version: 1}); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "init", "-q")
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "-qm", "pave new")
	return dir, a
}

func read(t *testing.T, dir, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func write(t *testing.T, dir, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, p), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func exists(dir, p string) bool {
	_, err := os.Stat(filepath.Join(dir, p))
	return err == nil
}

func replaceIn(t *testing.T, dir, p, old, new string) {
	t.Helper()
	s := read(t, dir, p)
	if !strings.Contains(s, old) {
		t.Fatalf("%s does not contain %q", p, old)
	}
	write(t, dir, p, strings.Replace(s, old, new, 1))
}

func TestUpgradeCases(t *testing.T) {
	v2, err := Render(testAnswers(), 2)
	if err != nil {
		t.Fatal(err)
	}
	const teamRoute = "\n// listOrders is the team's own code.\nfunc listOrders() {}\n"
	cases := []struct {
		name string
		edit func(t *testing.T, dir string)
		// actions expected per path; paths not listed must not change.
		actions   map[string]string
		conflicts []string
		check     func(t *testing.T, dir string)
	}{
		{
			name: "untouched repository becomes exactly v2",
			actions: map[string]string{
				"Dockerfile": ActionUpdated, "README.md": ActionUpdated, "deploy/base/deployment.yaml": ActionUpdated,
				"deploy/base/kustomization.yaml": ActionUpdated, "deploy/base/networkpolicy.yaml": ActionAdded,
				"observability/README.md": ActionRemoved,
			},
			check: func(t *testing.T, dir string) {
				for p, want := range v2 {
					if got := read(t, dir, p); got != string(want) {
						t.Errorf("%s differs from a fresh v2 rendering", p)
					}
				}
				if exists(dir, "observability/README.md") {
					t.Error("observability/README.md was not removed")
				}
			},
		},
		{
			name: "edits to files the template did not change are untouched",
			edit: func(t *testing.T, dir string) {
				write(t, dir, "api.go", read(t, dir, "api.go")+teamRoute)
				replaceIn(t, dir, "deploy/base/hpa.yaml", "averageUtilization: 70", "averageUtilization: 55")
				write(t, dir, "internal/orders/store.go", "package orders\n")
			},
			actions: map[string]string{
				"Dockerfile": ActionUpdated, "README.md": ActionUpdated, "deploy/base/deployment.yaml": ActionUpdated,
				"deploy/base/kustomization.yaml": ActionUpdated, "deploy/base/networkpolicy.yaml": ActionAdded,
				"observability/README.md": ActionRemoved,
			},
			check: func(t *testing.T, dir string) {
				if !strings.HasSuffix(read(t, dir, "api.go"), teamRoute) {
					t.Error("the team's edit of api.go is gone")
				}
				if !strings.Contains(read(t, dir, "deploy/base/hpa.yaml"), "averageUtilization: 55") {
					t.Error("the team's HPA target is gone")
				}
				if read(t, dir, "internal/orders/store.go") != "package orders\n" {
					t.Error("the team's own file changed")
				}
			},
		},
		{
			name: "team and template edits in different places merge cleanly",
			edit: func(t *testing.T, dir string) {
				write(t, dir, "Dockerfile", read(t, dir, "Dockerfile")+"LABEL org.opencontainers.image.vendor=payments\n")
				replaceIn(t, dir, "deploy/base/deployment.yaml", "periodSeconds: 10", "periodSeconds: 15")
				replaceIn(t, dir, "deploy/base/kustomization.yaml", "  - virtualservice.yaml\n", "  - virtualservice.yaml\n  - configmap.yaml\n")
				write(t, dir, "README.md", "Payments' notes on orders.\n\n"+read(t, dir, "README.md"))
			},
			actions: map[string]string{
				"Dockerfile": ActionMerged, "README.md": ActionMerged, "deploy/base/deployment.yaml": ActionMerged,
				"deploy/base/kustomization.yaml": ActionMerged, "deploy/base/networkpolicy.yaml": ActionAdded,
				"observability/README.md": ActionRemoved,
			},
			check: func(t *testing.T, dir string) {
				d := read(t, dir, "Dockerfile")
				if !strings.Contains(d, "GOTOOLCHAIN=local") || !strings.Contains(d, "image.vendor=payments") {
					t.Errorf("Dockerfile lacks one side:\n%s", d)
				}
				dep := read(t, dir, "deploy/base/deployment.yaml")
				if !strings.Contains(dep, "topologySpreadConstraints") || !strings.Contains(dep, "periodSeconds: 15") {
					t.Errorf("deployment lacks one side:\n%s", dep)
				}
				k := read(t, dir, "deploy/base/kustomization.yaml")
				if !strings.Contains(k, "networkpolicy.yaml") || !strings.Contains(k, "configmap.yaml") {
					t.Errorf("kustomization lacks one side:\n%s", k)
				}
				if r := read(t, dir, "README.md"); !strings.HasPrefix(r, "Payments' notes") || !strings.Contains(r, "## Keep it current") {
					t.Errorf("README lacks one side:\n%s", r)
				}
				for _, p := range []string{"Dockerfile", "README.md", "deploy/base/deployment.yaml", "deploy/base/kustomization.yaml"} {
					if merge.HasMarkers(read(t, dir, p)) {
						t.Errorf("%s has conflict markers after a clean merge", p)
					}
				}
			},
		},
		{
			name: "the same line changed both ways is a marked conflict",
			edit: func(t *testing.T, dir string) {
				replaceIn(t, dir, "Dockerfile", "FROM golang:"+DefaultGoVersion+" AS build", "FROM golang:"+DefaultGoVersion+"-alpine AS build")
			},
			actions: map[string]string{
				"Dockerfile": ActionConflict, "README.md": ActionUpdated, "deploy/base/deployment.yaml": ActionUpdated,
				"deploy/base/kustomization.yaml": ActionUpdated, "deploy/base/networkpolicy.yaml": ActionAdded,
				"observability/README.md": ActionRemoved,
			},
			conflicts: []string{"Dockerfile"},
			check: func(t *testing.T, dir string) {
				d := read(t, dir, "Dockerfile")
				// Only the line both changed conflicts; the template's ENV
				// change a line below merges cleanly.
				g := DefaultGoVersion
				want := "<<<<<<< ours\nFROM golang:" + g + "-alpine AS build\n||||||| base\nFROM golang:" + g + " AS build\n" +
					"=======\nFROM golang:" + g + "-bookworm AS build\n>>>>>>> theirs\nWORKDIR /src\n" +
					"# GOTOOLCHAIN=local: build with the image's Go, never a downloaded one.\nENV CGO_ENABLED=0 GOFLAGS=-trimpath GOTOOLCHAIN=local\n"
				if !strings.Contains(d, want) {
					t.Errorf("Dockerfile conflict region:\n%s\nwant it to contain:\n%s", d, want)
				}
				if !strings.Contains(d, "distroless/static-debian12:nonroot") {
					t.Error("the rest of the Dockerfile is gone")
				}
			},
		},
		{
			name: "files the team deleted stay deleted",
			edit: func(t *testing.T, dir string) {
				for _, p := range []string{"README.md", "observability/README.md", "deploy/gateway-api/httproute.yaml"} {
					if err := os.Remove(filepath.Join(dir, p)); err != nil {
						t.Fatal(err)
					}
				}
			},
			actions: map[string]string{
				"Dockerfile": ActionUpdated, "README.md": ActionKeptDeleted, "deploy/base/deployment.yaml": ActionUpdated,
				"deploy/base/kustomization.yaml": ActionUpdated, "deploy/base/networkpolicy.yaml": ActionAdded,
			},
			check: func(t *testing.T, dir string) {
				for _, p := range []string{"README.md", "observability/README.md", "deploy/gateway-api/httproute.yaml"} {
					if exists(dir, p) {
						t.Errorf("%s came back", p)
					}
				}
			},
		},
		{
			name: "a file the template dropped but the team changed is kept and listed",
			edit: func(t *testing.T, dir string) {
				write(t, dir, "observability/README.md", read(t, dir, "observability/README.md")+"Runbook: ...\n")
			},
			actions: map[string]string{
				"Dockerfile": ActionUpdated, "README.md": ActionUpdated, "deploy/base/deployment.yaml": ActionUpdated,
				"deploy/base/kustomization.yaml": ActionUpdated, "deploy/base/networkpolicy.yaml": ActionAdded,
				"observability/README.md": ActionKeptOurs,
			},
			conflicts: []string{"observability/README.md"},
			check: func(t *testing.T, dir string) {
				if !strings.Contains(read(t, dir, "observability/README.md"), "Runbook") {
					t.Error("the team's file was changed")
				}
			},
		},
		{
			name: "a file the team already added where the template adds one",
			edit: func(t *testing.T, dir string) {
				write(t, dir, "deploy/base/networkpolicy.yaml", "# ours\n")
			},
			actions: map[string]string{
				"Dockerfile": ActionUpdated, "README.md": ActionUpdated, "deploy/base/deployment.yaml": ActionUpdated,
				"deploy/base/kustomization.yaml": ActionUpdated, "deploy/base/networkpolicy.yaml": ActionConflict,
				"observability/README.md": ActionRemoved,
			},
			conflicts: []string{"deploy/base/networkpolicy.yaml"},
			check: func(t *testing.T, dir string) {
				n := read(t, dir, "deploy/base/networkpolicy.yaml")
				if !strings.HasPrefix(n, "<<<<<<< ours\n# ours\n||||||| base\n=======\n") {
					t.Errorf("networkpolicy.yaml:\n%s", n)
				}
			},
		},
		{
			name: "a change the team already made like the template is no change",
			edit: func(t *testing.T, dir string) {
				write(t, dir, "Dockerfile", string(v2["Dockerfile"]))
			},
			actions: map[string]string{
				"README.md": ActionUpdated, "deploy/base/deployment.yaml": ActionUpdated,
				"deploy/base/kustomization.yaml": ActionUpdated, "deploy/base/networkpolicy.yaml": ActionAdded,
				"observability/README.md": ActionRemoved,
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := newAtV1(t)
			if tc.edit != nil {
				tc.edit(t, dir)
				git(t, dir, "add", "-A")
				git(t, dir, "commit", "-qm", "team edits")
			}
			before := snapshot(t, dir)
			res, err := Upgrade(context.Background(), UpgradeOptions{Dir: dir, Version: 2})
			if err != nil {
				t.Fatal(err)
			}
			if res.From != 1 || res.To != 2 {
				t.Errorf("from %d to %d", res.From, res.To)
			}
			got := map[string]string{}
			for _, c := range res.Changes {
				if c.Path != RecordFile {
					got[c.Path] = c.Action
				}
			}
			if !mapsEqual(got, tc.actions) {
				t.Errorf("actions:\n got %v\nwant %v", got, tc.actions)
			}
			if !slices.Equal(res.Conflicts, tc.conflicts) && !(len(res.Conflicts) == 0 && len(tc.conflicts) == 0) {
				t.Errorf("conflicts %v, want %v", res.Conflicts, tc.conflicts)
			}
			// Nothing outside the listed changes moved.
			after := snapshot(t, dir)
			for p, content := range before {
				if _, listed := tc.actions[p]; !listed && p != RecordFile && after[p] != content {
					t.Errorf("%s changed but is not in the plan", p)
				}
			}
			if r, _, err := Check(dir); err != nil || r != 2 {
				t.Errorf(".pave.yaml records version %d (%v), want 2", r, err)
			}
			if tc.check != nil {
				tc.check(t, dir)
			}
			// Stray temporary files would be a sign of a non-atomic write.
			for p := range after {
				if strings.Contains(p, ".pave-") {
					t.Errorf("temporary file %s left behind", p)
				}
			}
			// A second run has nothing to do.
			git(t, dir, "add", "-A")
			git(t, dir, "commit", "-qm", "upgrade", "--allow-empty")
			again, err := Upgrade(context.Background(), UpgradeOptions{Dir: dir, Version: 2})
			if err != nil || !again.UpToDate {
				t.Errorf("second upgrade: %+v, %v", again, err)
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// snapshot reads every file of the work tree (not .git).
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[filepath.ToSlash(rel)] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestUpgradeDryRunWritesNothingAndPrintsAPatch(t *testing.T) {
	patch := tool(t, "patch", "install the Debian package patch")
	dir, _ := newAtV1(t)
	write(t, dir, "Dockerfile", read(t, dir, "Dockerfile")+"LABEL team=payments\n")
	before := snapshot(t, dir)
	res, err := Upgrade(context.Background(), UpgradeOptions{Dir: dir, Version: 2, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, dir); !mapsEqual(before, after) {
		t.Fatal("--dry-run changed the work tree")
	}
	for _, want := range []string{"--- a/Dockerfile\n+++ b/Dockerfile\n", "--- /dev/null\n+++ b/deploy/base/networkpolicy.yaml\n", "--- a/observability/README.md\n+++ /dev/null\n", "-templateVersion: 1\n+templateVersion: 2\n"} {
		if !strings.Contains(res.Diff, want) {
			t.Errorf("diff lacks %q:\n%s", want, res.Diff)
		}
	}
	// The printed diff is the upgrade: applying it gives what Upgrade writes.
	cmd := exec.Command(patch, "-p1", "--silent", "--force")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(res.Diff)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("patch: %v\n%s", err, out)
	}
	patched := snapshot(t, dir)
	git(t, dir, "checkout", "-q", "--", ".")
	git(t, dir, "clean", "-qfd")
	write(t, dir, "Dockerfile", read(t, dir, "Dockerfile")+"LABEL team=payments\n")
	if _, err := Upgrade(context.Background(), UpgradeOptions{Dir: dir, Version: 2, Force: true}); err != nil {
		t.Fatal(err)
	}
	if upgraded := snapshot(t, dir); !mapsEqual(patched, upgraded) {
		for p := range upgraded {
			if patched[p] != upgraded[p] {
				t.Errorf("%s: patched and upgraded differ", p)
			}
		}
	}
}

func TestUpgradeRefusesDirtyTreeUnlessForced(t *testing.T) {
	dir, _ := newAtV1(t)
	write(t, dir, "api.go", read(t, dir, "api.go")+"// wip\n")
	before := snapshot(t, dir)
	_, err := Upgrade(context.Background(), UpgradeOptions{Dir: dir})
	if !errors.Is(err, ErrDirty) || !strings.Contains(err.Error(), "api.go") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("dirty tree: %v", err)
	}
	if !mapsEqual(before, snapshot(t, dir)) {
		t.Fatal("a refused upgrade wrote files")
	}
	if _, err := Upgrade(context.Background(), UpgradeOptions{Dir: dir, Force: true}); err != nil {
		t.Fatalf("--force: %v", err)
	}
	if !strings.HasSuffix(read(t, dir, "api.go"), "// wip\n") {
		t.Error("the uncommitted edit was lost")
	}

	// Outside git there is no way to review or undo: refused too.
	plain := filepath.Join(t.TempDir(), "orders")
	if _, err := New(context.Background(), NewOptions{Answers: testAnswers(), Dir: plain, Version: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := Upgrade(context.Background(), UpgradeOptions{Dir: plain}); err == nil || !strings.Contains(err.Error(), "not a git work tree") {
		t.Fatalf("outside git: %v", err)
	}
}

func TestUpgradeBadRecord(t *testing.T) {
	dir, _ := newAtV1(t)
	for _, tc := range []struct{ record, want string }{
		{"template: service\ntemplateVersion: 9\nanswers: {name: orders}\n", "newer than this pave knows"},
		{"template: service\ntemplateVersion: 1\nanswers: {name: orders, clusters: [../../etc]}\n", "answers.clusters[0]"},
		{"template: service\ntemplateVersion: 1\nanswers: {name: orders, colour: blue}\n", "colour"},
		{"template: other\ntemplateVersion: 1\nanswers: {name: orders}\n", "only \"service\""},
	} {
		write(t, dir, RecordFile, tc.record)
		git(t, dir, "commit", "-qam", "record")
		before := snapshot(t, dir)
		_, err := Upgrade(context.Background(), UpgradeOptions{Dir: dir})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("record %q: err %v, want %q", tc.record, err, tc.want)
		}
		if !mapsEqual(before, snapshot(t, dir)) {
			t.Errorf("record %q: files were written", tc.record)
		}
	}
	if err := os.Remove(filepath.Join(dir, RecordFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Upgrade(context.Background(), UpgradeOptions{Dir: dir, Force: true}); err == nil || !strings.Contains(err.Error(), "made with pave new") {
		t.Errorf("no record: %v", err)
	}
}

// A symlink planted in the repository cannot make the upgrade write outside.
func TestUpgradeDoesNotFollowSymlinksOut(t *testing.T) {
	dir, _ := newAtV1(t)
	outside := t.TempDir()
	if err := os.RemoveAll(filepath.Join(dir, "deploy", "base")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "deploy", "base")); err != nil {
		t.Fatal(err)
	}
	_, err := Upgrade(context.Background(), UpgradeOptions{Dir: dir, Force: true})
	if err == nil {
		t.Fatal("upgrade through a symlink leaving the repository succeeded")
	}
	entries, _ := os.ReadDir(outside)
	if len(entries) > 0 {
		t.Fatalf("files written outside the repository: %v", entries)
	}
}
