package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/scaffold"
)

// No control plane runs in these tests: new and upgrade are local commands.
var deadServer = []string{"PAVE_SERVER=http://127.0.0.1:1"}

func exitStatus(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func gitIn(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func TestNewCommand(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	dir := filepath.Join(parent, "orders")
	out, err := pave(t, deadServer, "new", "orders", "--dir", dir, "--owner", "payments", "--memory", "512Mi", "--no-tidy", "-o", "json")
	if err != nil {
		t.Fatalf("pave new: %v\n%s", err, out)
	}
	var res struct {
		Dir             string   `json:"dir"`
		TemplateVersion int      `json:"templateVersion"`
		Files           []string `json:"files"`
		KitReplace      string   `json:"kitReplace"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--output json is not JSON: %v\n%s", err, out)
	}
	if res.Dir != dir || res.TemplateVersion < 1 || len(res.Files) < 20 {
		t.Errorf("summary %+v", res)
	}
	// Run from the source checkout (the test's working directory), go.mod
	// replaces kit with the checkout's kit.
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	kit, _ := filepath.Abs(filepath.Join("..", "..", "kit"))
	if !strings.Contains(string(gomod), "=> "+kit) || res.KitReplace != kit {
		t.Errorf("go.mod does not replace kit with %s:\n%s", kit, gomod)
	}
	dep, _ := os.ReadFile(filepath.Join(dir, "deploy", "base", "deployment.yaml"))
	if !strings.Contains(string(dep), `memory: "512Mi"`) {
		t.Errorf("deployment lacks the memory answer:\n%s", dep)
	}

	// Inside a Go workspace (a checkout of Pave), the next steps build
	// the service on its own.
	if err := os.WriteFile(filepath.Join(parent, "go.work"), []byte("go 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = pave(t, append(deadServer, "GOWORK="), "new", "inwork", "--dir", filepath.Join(parent, "inwork"), "--no-tidy")
	if err != nil || !strings.Contains(out, "outside the workspace of "+filepath.Join(parent, "go.work")) ||
		!strings.Contains(out, "GOWORK=off go test ./... && PORT=8090 GOWORK=off go run .") {
		t.Errorf("pave new inside a workspace: %v\n%s", err, out)
	}
	if err := os.Remove(filepath.Join(parent, "go.work")); err != nil {
		t.Fatal(err)
	}

	// --no-kit-replace requires the released kit.
	rel := filepath.Join(parent, "released")
	if out, err := pave(t, deadServer, "new", "orders", "--dir", rel, "--no-kit-replace", "--no-tidy"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if gomod, _ := os.ReadFile(filepath.Join(rel, "go.mod")); strings.Contains(string(gomod), "replace") {
		t.Errorf("--no-kit-replace still replaces:\n%s", gomod)
	}

	// Answers from a file; flags win over it.
	answers := filepath.Join(parent, "answers.yaml")
	if err := os.WriteFile(answers, []byte("name: billing\nowner: money\nmemory: 1Gi\nclusters: [east, west, north]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fromFile := filepath.Join(parent, "billing")
	if out, err := pave(t, deadServer, "new", "--answers", answers, "--memory", "768Mi", "--dir", fromFile, "--no-tidy"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	rec, _ := os.ReadFile(filepath.Join(fromFile, ".pave.yaml"))
	for _, want := range []string{"name: billing", "owner: money", "memory: 768Mi", "- north"} {
		if !strings.Contains(string(rec), want) {
			t.Errorf(".pave.yaml lacks %q:\n%s", want, rec)
		}
	}
	if _, err := os.Stat(filepath.Join(fromFile, "deploy", "overlays", "north", "kustomization.yaml")); err != nil {
		t.Error("no overlay for cluster north")
	}
}

func TestNewCommandBadInput(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"new", "Orders_API"}, "NAME (name): \"Orders_API\" is not a DNS-1123 label"},
		{[]string{"new", "orders", "--memory", "lots"}, "--memory (memory): \"lots\" is not a Kubernetes quantity"},
		{[]string{"new", "orders", "--clusters", "dc1,../x"}, "--clusters (clusters[1])"},
		{[]string{"new"}, "NAME: missing"},
		{[]string{"new", "orders", "--kit-replace", parent}, "--kit-replace"},
		{[]string{"new", "orders", "--answers", filepath.Join(parent, "nope.yaml")}, "--answers"},
	} {
		args := append(tc.args, "--dir", filepath.Join(parent, "svc"))
		out, err := pave(t, deadServer, args...)
		if exitStatus(err) != 1 || !strings.Contains(out, tc.want) {
			t.Errorf("pave %v: exit %d, output %q, want exit 1 and %q", tc.args, exitStatus(err), out, tc.want)
		}
		if entries, _ := os.ReadDir(parent); len(entries) != 0 {
			t.Fatalf("pave %v wrote %v", tc.args, entries)
		}
	}
	// A non-empty target needs --force.
	dir := filepath.Join(parent, "busy")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := pave(t, deadServer, "new", "orders", "--dir", dir, "--no-tidy")
	if exitStatus(err) != 1 || !strings.Contains(out, "--dir (dir)") || !strings.Contains(out, "--force") {
		t.Errorf("non-empty dir: exit %d, %s", exitStatus(err), out)
	}
	if out, err := pave(t, deadServer, "new", "orders", "--dir", dir, "--no-tidy", "--force"); err != nil {
		t.Errorf("--force: %v\n%s", err, out)
	}
}

func TestUpgradeCommand(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "orders")
	if out, err := pave(t, deadServer, "new", "orders", "--dir", dir, "--template-version", "1", "--no-tidy"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	gitIn(t, dir, "init", "-q")
	gitIn(t, dir, "add", "-A")
	gitIn(t, dir, "commit", "-qm", "pave new")

	// --check exits 1 while behind.
	out, err := pave(t, deadServer, "upgrade", dir, "--check")
	if exitStatus(err) != 1 || !strings.Contains(out, "template version 1 is behind") {
		t.Errorf("--check behind: exit %d, %s", exitStatus(err), out)
	}
	out, err = pave(t, deadServer, "upgrade", dir, "--check", "-o", "json")
	if exitStatus(err) != 1 || !strings.Contains(out, `"behind": true`) {
		t.Errorf("--check -o json: exit %d, %s", exitStatus(err), out)
	}

	// A dirty tree is refused.
	dockerfile := filepath.Join(dir, "Dockerfile")
	orig, _ := os.ReadFile(dockerfile)
	edited := strings.Replace(string(orig), "AS build", "AS builder-of-orders", 1)
	if err := os.WriteFile(dockerfile, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = pave(t, deadServer, "upgrade", dir)
	if exitStatus(err) != 1 || !strings.Contains(out, "uncommitted changes") {
		t.Errorf("dirty tree: exit %d, %s", exitStatus(err), out)
	}
	gitIn(t, dir, "commit", "-qam", "team edit")

	// --dry-run prints the diff, writes nothing, exits 0.
	out, err = pave(t, deadServer, "upgrade", dir, "--dry-run")
	if err != nil || !strings.Contains(out, "+++ b/deploy/base/networkpolicy.yaml") || !strings.Contains(out, "nothing written") {
		t.Errorf("--dry-run: %v\n%s", err, out)
	}
	if now, _ := os.ReadFile(dockerfile); string(now) != edited {
		t.Error("--dry-run wrote the Dockerfile")
	}

	// The real run: the Dockerfile conflicts (the team and the template
	// changed the same line), the rest applies; exit 1 lists the conflict.
	out, err = pave(t, deadServer, "upgrade", dir)
	if exitStatus(err) != 1 || !strings.Contains(out, "conflicts (1)") || !strings.Contains(out, "Dockerfile: conflict markers at lines [4]") {
		t.Errorf("upgrade: exit %d\n%s", exitStatus(err), out)
	}
	now, _ := os.ReadFile(dockerfile)
	if !strings.Contains(string(now), "<<<<<<< ours\nFROM golang:"+scaffold.DefaultGoVersion+" AS builder-of-orders\n||||||| base\n") {
		t.Errorf("Dockerfile:\n%s", now)
	}
	out, err = pave(t, deadServer, "upgrade", dir, "--check")
	if err != nil || !strings.Contains(out, "up to date") {
		t.Errorf("--check after upgrade: %v %s", err, out)
	}
}
