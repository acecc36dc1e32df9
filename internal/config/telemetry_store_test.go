package config

import (
	"strings"
	"testing"
)

func TestTelemetryStoreSetting(t *testing.T) {
	c, err := load(t, nil, nil, "")
	if err != nil || c.TelemetryStore != "embedded" {
		t.Fatalf("default: %q %v, want embedded", c.TelemetryStore, err)
	}
	spec := "victorialogs://vl-1:9428,vl-2:9428?flush-interval=1s"
	c, err = load(t, nil, map[string]string{"PAVE_TELEMETRY_STORE": spec}, "")
	if err != nil || c.TelemetryStore != spec {
		t.Fatalf("from env: %q %v", c.TelemetryStore, err)
	}
	c, err = load(t, nil, nil, "telemetry-store: victorialogs://127.0.0.1:9428\n")
	if err != nil || c.TelemetryStore != "victorialogs://127.0.0.1:9428" {
		t.Fatalf("from pave.yaml: %q %v", c.TelemetryStore, err)
	}
	for value, want := range map[string]string{
		"clickhouse://db:9000":                      "want victorialogs://host:port",
		"victorialogs://vl-1":                       "is not host:port",
		"victorialogs://vl-1:9428?tls=1":            `unknown parameter "tls"`,
		"victorialogs://vl:9428?flush-interval=now": "flush-interval",
	} {
		_, err := load(t, []string{"--telemetry-store", value}, nil, "")
		if err == nil || !strings.Contains(err.Error(), "invalid setting telemetry-store (from --telemetry-store)") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error naming the setting and %q", value, err, want)
		}
	}
	_, err = load(t, []string{"--telemetry-store", "victorialogs://pave:hunter2@vl:9428"}, nil, "")
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("credentials in the URL: %v", err)
	}
}
