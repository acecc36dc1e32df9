package metrics

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"sigs.k8s.io/yaml"
)

// Jobs: the scrape pools Pave runs. Targets are set per job (SetTargets).
const (
	JobServices = "services" // every ready instance of every service
	JobGateway  = "gateway"  // each embedded cluster's gateway
	JobPave     = "pave"     // the control plane itself
)

// promConfig is the prometheus.yml these options amount to, parsed and
// validated by Prometheus' own loader so every default (queue sizes,
// backoff, scrape protocols) is Prometheus'.
func (o Options) promConfig() (*config.Config, error) {
	timeout := min(o.ScrapeInterval, 10*time.Second)
	job := func(name string, honor bool) map[string]any {
		return map[string]any{
			"job_name": name, "honor_labels": honor, "sample_limit": o.SampleLimit,
			"scrape_interval": model.Duration(o.ScrapeInterval).String(), "scrape_timeout": model.Duration(timeout).String(),
		}
	}
	doc := map[string]any{
		"global": map[string]any{"scrape_interval": model.Duration(o.ScrapeInterval).String(), "scrape_timeout": model.Duration(timeout).String()},
		// A kit service labels its series with its own version; honouring
		// it keeps the name `version` (not exported_version) for the
		// dashboard. Pave's own targets keep the labels Pave sets.
		"scrape_configs": []any{job(JobServices, true), job(JobGateway, false), job(JobPave, false)},
	}
	var rw []any
	for i, u := range o.RemoteWrite {
		if err := CheckRemoteWriteURL(u); err != nil {
			return nil, fmt.Errorf("metrics-remote-write #%d %q: %w", i+1, u, err)
		}
		rw = append(rw, map[string]any{"url": u, "name": fmt.Sprintf("rw%d", i+1)})
	}
	if rw != nil {
		doc["remote_write"] = rw
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		return nil, err
	}
	cfg, err := config.Load(string(b), nil)
	if err != nil {
		return nil, fmt.Errorf("metrics: configuration: %w", err)
	}
	return cfg, nil
}

// CheckRemoteWriteURL accepts an http(s) URL with a host, the receivers'
// write endpoint (e.g. http://prometheus:9090/api/v1/write).
func CheckRemoteWriteURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("want an http(s) URL of a remote-write receiver, e.g. http://prometheus:9090/api/v1/write")
	}
	if strings.Contains(u.Host, "@") || u.User != nil {
		return fmt.Errorf("credentials in the URL are not supported; put the receiver behind a proxy that adds them")
	}
	return nil
}
