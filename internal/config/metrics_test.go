package config

import (
	"strings"
	"testing"
)

func TestMetricsSettings(t *testing.T) {
	env := map[string]string{
		"PAVE_METRICS_SCRAPE_INTERVAL": "5s", "PAVE_METRICS_RETENTION": "48h", "PAVE_METRICS_RETENTION_SIZE": "512MiB",
		"PAVE_METRICS_REMOTE_WRITE": "http://a:9090/api/v1/write,https://b/api/v1/push",
	}
	cfg, err := (&Loader{cfg: Default()}).Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := cfg.MetricsRetentionBytes(); n != 512<<20 || cfg.MetricsScrapeInterval.Seconds() != 5 || len(cfg.MetricsRemoteWrite) != 2 {
		t.Fatalf("%+v", cfg)
	}
	for k, v := range map[string]string{
		"PAVE_METRICS_RETENTION_SIZE":  "lots",
		"PAVE_METRICS_REMOTE_WRITE":    "ftp://x",
		"PAVE_METRICS_SCRAPE_INTERVAL": "10ms",
		"PAVE_METRICS_SAMPLE_LIMIT":    "-1",
	} {
		_, err := (&Loader{cfg: Default()}).Load(func(key string) string {
			if key == k {
				return v
			}
			return ""
		})
		name := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, "PAVE_"), "_", "-"))
		if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: %v, want an error naming %s and %s", k, v, err, name, k)
		}
	}
}
