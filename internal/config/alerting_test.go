package config

import (
	"strings"
	"testing"
)

func TestAlertingSettings(t *testing.T) {
	env := map[string]string{
		"PAVE_RULE_FILES":    "rules/*.yaml,team/*.rules.yml",
		"PAVE_ALERTMANAGERS": "http://am1:9093,https://am2/prefix",
	}
	cfg, err := (&Loader{cfg: Default()}).Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.RuleFiles) != 2 || cfg.RuleFiles[1] != "team/*.rules.yml" || len(cfg.Alertmanagers) != 2 || cfg.AlertConfig != "" {
		t.Fatalf("%+v", cfg)
	}
	for k, v := range map[string]string{
		"PAVE_RULE_FILES":    "rules/[.yaml",
		"PAVE_ALERTMANAGERS": "am1:9093",
		"PAVE_ALERT_CONFIG":  "/nonexistent/alerting.yml",
	} {
		_, err := (&Loader{cfg: Default()}).Load(func(key string) string {
			if key == k {
				return v
			}
			return ""
		})
		name := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, "PAVE_"), "_", "-"))
		if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), v) {
			t.Errorf("%s=%s: %v, want an error naming %s and the value", k, v, err, name)
		}
	}
}
