package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/release"
)

func TestReleaseShadowFlag(t *testing.T) {
	base, err := specFromFlags("pay", "v2", "", "/bin/pay", "", "", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	for flag, want := range map[string]string{"2m": `{"duration":"2m0s"}`, "500": `{"samples":500}`} {
		b, err := withShadow(base, flag, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Spec map[string]json.RawMessage `json:"spec"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		if string(doc.Spec["shadow"]) != want || string(doc.Spec["maxDuration"]) != `"1h0m0s"` {
			t.Errorf("--shadow %s: %s", flag, b)
		}
	}
	for _, off := range []string{"0", "off"} {
		b, err := withShadow(base, off, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Spec map[string]json.RawMessage `json:"spec"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		if string(doc.Spec["autoShadow"]) != "false" || doc.Spec["shadow"] != nil {
			t.Errorf("--shadow %s: %s", off, b)
		}
	}
	for _, bad := range []string{"soon", "-2m", "-1"} {
		if _, err := withShadow(base, bad, 0); err == nil || !strings.Contains(err.Error(), "--shadow") {
			t.Errorf("--shadow %s: %v", bad, err)
		}
	}
}

// TestForecastLineSaysAShadowStepWasAdded: a release that added a shadow
// step of its own at low traffic says so when it is created.
func TestForecastLineSaysAShadowStepWasAdded(t *testing.T) {
	f := &release.Forecast{Rate: 2, Source: "test", Expected: release.Duration(10 * time.Minute), ShadowAdded: "added a 1m shadow step: because"}
	got := forecastLine(release.Status{Phase: release.Pending, Forecast: f}, style{})
	want := "low traffic: added a 1m shadow step: because\nforecast: the judges should decide in about 10 min at 2 requests/s (test)"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	f.ShadowAdded = ""
	if got := forecastLine(release.Status{Phase: release.Pending, Forecast: f}, style{}); strings.Contains(got, "low traffic") {
		t.Errorf("no shadow step added: %q", got)
	}
}
