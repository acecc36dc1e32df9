package config

import (
	"strings"
	"testing"
)

func TestTelemetryColdStoreSetting(t *testing.T) {
	c, err := load(t, nil, nil, "")
	if err != nil || c.TelemetryColdStore != "dir" {
		t.Fatalf("default: %q %v, want dir", c.TelemetryColdStore, err)
	}
	spec := "s3://pave-logs/cold?endpoint=127.0.0.1:9000&insecure=1"
	c, err = load(t, nil, map[string]string{"PAVE_TELEMETRY_COLD_STORE": spec}, "")
	if err != nil || c.TelemetryColdStore != spec {
		t.Fatalf("from env: %q %v", c.TelemetryColdStore, err)
	}
	_, err = load(t, nil, nil, "telemetry-cold-store: s3://b?tls=0\n")
	if err == nil || !strings.Contains(err.Error(), "invalid setting telemetry-cold-store (from ") || !strings.Contains(err.Error(), `unknown parameter "tls"`) {
		t.Fatalf("bad parameter: %v", err)
	}
	_, err = load(t, []string{"--telemetry-cold-store", "s3://AKIA:hunter2@b/p"}, nil, "")
	if err == nil || !strings.Contains(err.Error(), "--telemetry-cold-store") || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Fatalf("credentials in the URL: %v", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("the error repeats the secret: %v", err)
	}
}
