package main

import (
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/release"
)

// TestReleaseProfileFlag: --profile no-mirror adds the profile's fields
// to the spec, which the control plane's parser reads back as
// release.NoMirrorProfile sets them; --steps and --max-duration given
// on the command line win; an unknown profile is refused by name.
func TestReleaseProfileFlag(t *testing.T) {
	base, err := specFromFlags("ledger", "v7", "", "/bin/ledger", "", "", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := withProfile(base, "no-mirror")
	if err != nil {
		t.Fatal(err)
	}
	got, err := release.Parse(b)
	if err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	want := got
	release.NoMirrorProfile(&want.Spec)
	s, w := got.Spec, want.Spec
	if len(s.Steps) != 3 || s.Steps[0] != w.Steps[0] || s.Steps[1] != w.Steps[1] || s.StepSamples != 75 || s.MaxDuration.D() != 30*time.Minute ||
		s.Analysis.Alpha != 0.02 || s.Analysis.MaxRoutes != 0 || s.Analysis.ErrorFloor != 0.01 || s.Analysis.Beta != 0.05 {
		t.Errorf("--profile no-mirror: %s\nparsed %+v", b, s)
	}
	// --steps and --max-duration keep their values.
	given, err := specFromFlags("ledger", "v7", "", "/bin/ledger", "", "2,50,100", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if given, err = withProfile(given, "no-mirror"); err == nil {
		given, err = withShadow(given, "off", 2*time.Hour)
	}
	if err != nil {
		t.Fatal(err)
	}
	g, err := release.Parse(given)
	if err != nil {
		t.Fatal(err)
	}
	if g.Spec.Steps[0] != release.Percent(20_000) || g.Spec.MaxDuration.D() != 2*time.Hour || g.Spec.StepSamples != 75 {
		t.Errorf("--steps 2,50,100 --max-duration 2h: %s", given)
	}
	// A file's analysis settings stay beside the profile's.
	filed, err := withProfile([]byte(`{"apiVersion":"`+release.APIVersion+`","kind":"`+release.Kind+`","spec":{"service":"ledger","version":"v7","binary":"/bin/ledger","analysis":{"latencyFloorMs":250,"alpha":0.03}}}`), "no-mirror")
	if err != nil {
		t.Fatal(err)
	}
	f, err := release.Parse(filed)
	if err != nil {
		t.Fatalf("%s: %v", filed, err)
	}
	if a := f.Spec.Analysis; a.LatencyFloorMs != 250 || a.Alpha != 0.03 || a.ErrorFloor != 0.01 || f.Spec.StepSamples != 75 {
		t.Errorf("a file's analysis with --profile no-mirror: %s\nparsed %+v", filed, a)
	}
	if _, err := withProfile(base, "fast"); err == nil || !strings.Contains(err.Error(), `--profile "fast"`) || !strings.Contains(err.Error(), "no-mirror") {
		t.Errorf("--profile fast: %v", err)
	}
}
