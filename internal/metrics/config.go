package metrics

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/prometheus/prometheus/config"
	"sigs.k8s.io/yaml"
)

// Jobs: the scrape pools Pave runs. Targets are set per job (SetTargets).
const (
	JobServices = "services" // every ready instance of every service
	JobGateway  = "gateway"  // each embedded cluster's gateway
	JobPave     = "pave"     // the control plane itself
)

// promConfig is the prometheus.yml of the remote-write queues these
// options amount to, parsed and validated by Prometheus' own loader so
// every default (queue sizes, backoff) is Prometheus'. Scraping is the
// store's own loop (scrape.go), with Prometheus' scrape defaults.
func (o Options) promConfig() (*config.Config, error) {
	doc := map[string]any{}
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
