package backtest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// testdata/svc00.yaml and svc01.yaml are the rules Pave generates for the
// services of testdata/generate.yaml (99.9% availability), kept in the
// repository so the figures of docs/alerting-slo.md can be re-run with
// `pave alerts backtest`. PAVE_UPDATE_GOLDEN=1 rewrites them.
func TestGoldenRuleFilesAreCurrent(t *testing.T) {
	for _, svc := range []string{"svc00", "svc01"} {
		want, err := os.ReadFile(paveRules(t, t.TempDir(), svc))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join("testdata", svc+".yaml")
		if os.Getenv("PAVE_UPDATE_GOLDEN") == "1" {
			if err := os.WriteFile(p, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not what slo.Rules generates: run PAVE_UPDATE_GOLDEN=1 go test -run Golden ./internal/alert/backtest", p)
		}
	}
	spec, err := os.ReadFile(filepath.Join("testdata", "generate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseGenerateSpec(spec); err != nil {
		t.Error(err)
	}
}
