package alert

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	promnotifier "github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/rules"
)

// externalAlertmanagers sends every alert to external Alertmanagers over
// API v2 with Prometheus' own notifier (its queue, batching and
// per-Alertmanager send loops): the production path, where a team's
// Alertmanager cluster does the routing. Alerts firing are resent every
// minute by the rules manager, as Prometheus resends them, so an
// Alertmanager that was down, or restarted, receives them again.
type externalAlertmanagers struct {
	m     *promnotifier.Manager
	tsets chan map[string][]*targetgroup.Group
}

func newExternalAlertmanagers(urls []string, reg prometheus.Registerer, log *slog.Logger) (*externalAlertmanagers, error) {
	if len(urls) == 0 {
		return &externalAlertmanagers{}, nil
	}
	var yml strings.Builder
	yml.WriteString("alerting:\n  alertmanagers:\n")
	groups := map[string][]*targetgroup.Group{}
	for i, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("setting alertmanagers: %q is not an Alertmanager URL; want http(s)://HOST:PORT[/PREFIX], e.g. http://alertmanager:9093", raw)
		}
		prefix := strings.TrimSuffix(u.Path, "/")
		if prefix == "" {
			prefix = "/"
		}
		fmt.Fprintf(&yml, "  - scheme: %s\n    path_prefix: %s\n    api_version: v2\n", u.Scheme, strconv.Quote(prefix))
		groups[fmt.Sprintf("config-%d", i)] = []*targetgroup.Group{{Source: raw, Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(u.Host)}}}}
	}
	cfg, err := promconfig.Load(yml.String(), log)
	if err != nil {
		return nil, fmt.Errorf("setting alertmanagers: %w", err)
	}
	m := promnotifier.NewManager(&promnotifier.Options{QueueCapacity: 10000, DrainOnShutdown: true, Registerer: reg}, model.UTF8Validation, log)
	if err := m.ApplyConfig(cfg); err != nil {
		return nil, fmt.Errorf("setting alertmanagers: %w", err)
	}
	e := &externalAlertmanagers{m: m, tsets: make(chan map[string][]*targetgroup.Group, 1)}
	e.tsets <- groups
	return e, nil
}

func (e *externalAlertmanagers) run() {
	if e.m != nil {
		e.m.Run(e.tsets)
	}
}

func (e *externalAlertmanagers) stop() {
	if e.m != nil {
		e.m.Stop()
	}
}

func (e *externalAlertmanagers) send(externalURL, expr string, alerts []*rules.Alert) {
	if e.m == nil {
		return
	}
	rules.SendAlerts(e.m, externalURL)(context.Background(), expr, alerts...)
}

// URLs are the Alertmanagers alerts are sent to.
func (e *externalAlertmanagers) URLs() []*url.URL {
	if e.m == nil {
		return nil
	}
	return e.m.Alertmanagers()
}
