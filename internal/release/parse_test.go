package release

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

const goodSpec = `
apiVersion: pave.dev/v1alpha1
kind: Release
metadata:
  name: checkout-v2
spec:
  service: checkout
  version: v2
  binary: ./bin/checkout
  steps: [0.01, 1, "5", 25, 50, 100]
  stepDuration: 30s
  stepSamples: 500
  analysis:
    alpha: 0.005
    maxP99Ms: 800
`

func TestParseGoodSpec(t *testing.T) {
	r, err := Parse([]byte(goodSpec))
	if err != nil {
		t.Fatal(err)
	}
	if r.Metadata.Name != "checkout-v2" || r.Spec.Service != "checkout" || r.Spec.Version != "v2" {
		t.Fatalf("%+v", r)
	}
	if len(r.Spec.Steps) != 6 || r.Spec.Steps[0] != 100 || r.Spec.Steps[2] != 50_000 {
		t.Fatalf("steps %v", r.Spec.Steps)
	}
	if r.Spec.StepDuration.D() != 30*time.Second || r.Spec.StepSamples != 500 {
		t.Fatalf("step limits %v %v", r.Spec.StepDuration, r.Spec.StepSamples)
	}
	// Given analysis fields override, the others keep their defaults.
	if r.Spec.Analysis.Alpha != 0.005 || r.Spec.Analysis.MaxP99Ms != 800 || r.Spec.Analysis.Beta != 0.05 {
		t.Fatalf("analysis %+v", r.Spec.Analysis)
	}
	// Replicas stay unset: Create takes the stable version's count.
	if r.Spec.Replicas != 0 || r.Spec.OnHoldTimeout != "pause" {
		t.Fatalf("defaults %+v", r.Spec)
	}
	// spec.autoShadow: unset lets a low-traffic release add a shadow
	// step (forecast.go); false opts out.
	if r.Spec.AutoShadow != nil {
		t.Fatalf("autoShadow %v, want unset", *r.Spec.AutoShadow)
	}
	off, err := Parse([]byte(goodSpec + "  autoShadow: false\n"))
	if err != nil || off.Spec.AutoShadow == nil || *off.Spec.AutoShadow {
		t.Fatalf("autoShadow: false: %+v, %v", off.Spec.AutoShadow, err)
	}
	// JSON is YAML too.
	if _, err := Parse([]byte(`{"apiVersion":"pave.dev/v1alpha1","kind":"Release","spec":{"service":"a","version":"v2","image":"r/a:2"}}`)); err != nil {
		t.Fatal(err)
	}
}

func TestParseBadSpecsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name, edit, path, says string
	}{
		{"unknown field", "  stepz: 3\n", "spec.stepz", "unknown field"},
		{"unknown analysis field", "  analysis:\n    alpah: 0.1\n", "spec.analysis.alpah", "known fields here"},
		{"steps out of order", "  steps: [1, 5, 2, 100]\n", "spec.steps[2]", "must increase"},
		{"step above 100", "  steps: [1, 150]\n", "spec.steps[1]", "above 100"},
		{"last step not 100", "  steps: [1, 50]\n", "spec.steps[1]", "last step must be 100"},
		{"zero step", "  steps: [0, 100]\n", "spec.steps[0]", "above 0"},
		{"step with 5 decimals", "  steps: [0.00001, 100]\n", "spec.steps[0]", "decimals"},
		{"bad duration", "  stepDuration: soon\n", "spec.stepDuration", "duration"},
		{"wrong type", "  replicas: many\n", "spec.replicas", "want a int"},
		{"bad alpha", "  analysis:\n    alpha: 0.9\n", "spec.analysis.alpha", "between 0 and 0.5"},
		{"bad hold action", "  onHoldTimeout: panic\n", "spec.onHoldTimeout", "pause"},
		{"two artifacts", "  image: r/x:1\n", "spec.source", "exactly one"},
		{"bad version name", "  version: V2!\n", "spec.version", "lower-case"},
		{"autoShadow not a boolean", "  autoShadow: sometimes\n", "spec.autoShadow", "want a bool"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := "apiVersion: pave.dev/v1alpha1\nkind: Release\nspec:\n  service: shop\n  binary: ./shop\n"
			if !strings.Contains(tc.edit, "version:") {
				doc += "  version: v2\n"
			}
			_, err := Parse([]byte(doc + tc.edit))
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Path != tc.path || !strings.Contains(err.Error(), tc.says) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v; want a field error at %s saying %q", err, tc.path, tc.says)
			}
		})
	}
	_, err := Parse([]byte("apiVersion: pave.dev/v1alpha1\nkind: Release\nspec:\n  service: shop\n  binary: ./shop\n"))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "spec.version" || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing version: %v", err)
	}
	if _, err := Parse([]byte("kind: [")); err == nil || !errors.Is(err, ErrInvalid) {
		t.Fatalf("broken YAML: %v", err)
	}
	_, err = Parse([]byte("apiVersion: v1\nkind: Release\nspec: {}\n"))
	if !errors.As(err, &fe) || fe.Path != "apiVersion" {
		t.Fatalf("wrong apiVersion: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(goodSpec))
	f.Add([]byte(`{"apiVersion":"pave.dev/v1alpha1","kind":"Release","spec":{"service":"a","version":"v2","image":"x"}}`))
	f.Add([]byte("spec:\n  steps: [1, 2, 3]\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Add([]byte("spec:\n  analysis: 3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("Parse accepted a release that does not validate: %v", err)
		}
		b, err := jsonMarshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(b); err != nil {
			t.Fatalf("a parsed release does not parse again: %v\n%s", err, b)
		}
	})
}

func jsonMarshal(r Release) ([]byte, error) { return json.Marshal(r) }

func TestResolvePathsAgainstTheSpecFilesDirectory(t *testing.T) {
	doc := []byte("apiVersion: pave.dev/v1alpha1\nkind: Release\nspec:\n  service: shop\n  version: v2\n  source: ./shop\n")
	out, err := ResolvePaths(doc, "/srv/specs")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Spec.Source != "/srv/specs/shop" {
		t.Fatalf("source %q, want /srv/specs/shop", r.Spec.Source)
	}
	abs := []byte(`{"apiVersion":"pave.dev/v1alpha1","kind":"Release","spec":{"service":"shop","version":"v2","binary":"/opt/shop"}}`)
	if out, _ := ResolvePaths(abs, "/srv/specs"); !strings.Contains(string(out), `"/opt/shop"`) {
		t.Fatalf("an absolute path changed: %s", out)
	}
}
