package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksNoControlPlane keeps pave-telemetry's resident memory low: its
// executable's pages are most of its RSS at start, and the control plane's
// packages (configuration, Kubernetes clients, the API server) more than
// doubled them (18 to 39 MiB) when one import of internal/config slipped in.
// The benchmark's peak-RSS goal counts those pages.
func TestLinksNoControlPlane(t *testing.T) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list pave-telemetry's packages: %v", err)
	}
	out, err := exec.Command(goCmd, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{
			"github.com/pave-platform/pave/internal/config",
			"github.com/pave-platform/pave/internal/server",
			"github.com/pave-platform/pave/internal/kube",
			"k8s.io/client-go",
		} {
			if pkg == banned || strings.HasPrefix(pkg, banned+"/") {
				t.Errorf("pave-telemetry links %s: import a leaf package instead (see internal/netaddr)", pkg)
			}
		}
	}
}
