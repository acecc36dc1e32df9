package metricsource

import (
	"strings"
	"testing"
)

func TestNewPrometheusRefusesBadConfig(t *testing.T) {
	for _, c := range []struct {
		o    PrometheusOptions
		want string
	}{
		{PrometheusOptions{URL: "prometheus:9090"}, "want http(s)://host:port"},
		{PrometheusOptions{URL: "http://p:9090", Preset: "linkerd"}, "want istio or kit"},
		{PrometheusOptions{URL: "http://p:9090", Queries: &Queries{Requests: "sum(x{service=\"{{.Service}\"})", Latency: "y", VersionLabel: "version"}}, "requests query template"},
		{PrometheusOptions{URL: "http://p:9090", Queries: &Queries{Requests: "sum by (pod) (x)", Latency: "sum by (version, le) (y)", VersionLabel: "version"}}, "does not mention the version label"},
		{PrometheusOptions{URL: "http://p:9090", Queries: &Queries{Requests: "x", Latency: "y"}}, "versionLabel is empty"},
	} {
		if _, err := NewPrometheus(c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.o, err, c.want)
		}
	}
	for preset := range Presets {
		if _, err := NewPrometheus(PrometheusOptions{URL: "http://p:9090", Preset: preset}); err != nil {
			t.Errorf("preset %s: %v", preset, err)
		}
	}
}

func TestStatusClass(t *testing.T) {
	for in, want := range map[string]string{"503": "5xx", "200": "2xx", "5xx": "5xx", "0": "failed", "": "other"} {
		if got := statusClass(in); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
}
