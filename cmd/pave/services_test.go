package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/inventory/inventorytest"
)

// pave services and pave upgrade --all through the real binary: a fleet of
// one service behind the template and one directory that is not a service.
func TestServicesAndUpgradeAllCLI(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	inventorytest.NewService(t, filepath.Join(root, "svc"), inventorytest.Service{Name: "ledger", Version: 1, GoSum: true})
	os.MkdirAll(filepath.Join(root, "svc", "notes"), 0o755)
	fleet := filepath.Join(root, "fleet.yaml")
	os.WriteFile(fleet, []byte("services:\n  - path: svc/ledger\n  - path: svc/notes\n"), 0o644)
	// HOME keeps the user's files out; the go command's caches stay the
	// machine's (warm), or upgrade's go mod tidy and go build would fetch
	// the toolchain and every module again and compile from nothing.
	env := append([]string{"PAVE_VULNDB=", "HOME=" + root}, goCaches(t)...)
	server := "--server=" + freeAddr(t) // nothing listens: releases are unknown

	out, err := pave(t, env, "services", "--fleet", fleet, server, "-o", "json")
	if err == nil {
		t.Fatalf("pave services exited 0 with an unreadable service:\n%s", out)
	}
	var rep servicesReport
	if err := json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(rep.Services) != 2 || rep.Services[0].Name != "notes" || !strings.Contains(rep.Services[0].Error, "not a Pave service") ||
		rep.Services[1].TemplateVersion != 1 || rep.Services[1].ReleaseUnknown == "" {
		t.Errorf("report %+v", rep.Services)
	}
	out, _ = pave(t, env, "services", "--fleet", fleet, server)
	if !strings.Contains(out, "v1 (2 behind)") || !strings.Contains(out, "unknown") {
		t.Errorf("table:\n%s", out)
	}
	bad := filepath.Join(root, "bad.yaml")
	os.WriteFile(bad, []byte("services:\n  - path: a\n    gti: x\n"), 0o644)
	if out, err := pave(t, env, "services", "--fleet", bad, server); err == nil || !strings.Contains(out, "line 3: services[0].gti: unknown field") {
		t.Errorf("bad fleet file: %v\n%s", err, out)
	}

	prs := filepath.Join(root, "prs")
	for run, want := range []string{"clean", "unchanged"} {
		out, _ := pave(t, env, "upgrade", "--all", "--fleet", fleet, "--skip-tests", "--pr-dir", prs, "--cache-dir", filepath.Join(root, "cache"))
		var line string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "ledger ") {
				line = l
			}
		}
		if f := strings.Fields(line); len(f) < 2 || f[1] != want {
			t.Errorf("run %d: ledger %q, want %s:\n%s", run+1, line, want, out)
		}
		if !strings.Contains(out, "notes") || !strings.Contains(out, "error") {
			t.Errorf("run %d: the bad entry is not reported:\n%s", run+1, out)
		}
	}
	if pr, err := os.ReadFile(filepath.Join(prs, "ledger.md")); err != nil || !strings.Contains(string(pr), "template v1 -> v3") {
		t.Errorf("pull request description: %v\n%s", err, pr)
	}
}

// goCaches names the go command's module and build caches as the test
// process sees them, for a child run with another HOME.
func goCaches(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMODCACHE", "GOCACHE").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	f := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(f) != 2 || f[0] == "" || f[1] == "" {
		t.Fatalf("go env GOMODCACHE GOCACHE printed %q", out)
	}
	return []string{"GOMODCACHE=" + f[0], "GOCACHE=" + f[1]}
}
