package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/pave-platform/pave/internal/alert"
	"github.com/pave-platform/pave/internal/config"
	"github.com/pave-platform/pave/internal/leader"
	"github.com/pave-platform/pave/internal/server"
)

// startAlerts runs the alert engine of `pave up` (issue 16) over the
// embedded metrics store: the rule-files globs and the platform's rules
// evaluated by Prometheus' rules manager, what fires routed, silenced and
// inhibited by the embedded Alertmanager (alert-config) and sent to the
// external Alertmanagers (alertmanagers). State (silences, notification
// log, outbox) lives in DATA_DIR/alerting. The platform's rules, and each
// running service's SLO and probe rules, are kept by up_slo.go.
//
// Rules are evaluated and notifications sent on the elected leader only
// (issue 21, up_alerts_leader.go): each term runs its own engine.
func startAlerts(ctx context.Context, g *errgroup.Group, cfg config.Config, srv *server.Server, ms *metricsStore, clusters clusterSet, log *slog.Logger) (*leaderAlerts, error) {
	api := "http://" + cfg.HTTPAddr
	eng, err := newLeaderAlerts(ms.store.Registry, func(reg prometheus.Registerer) (*alert.Engine, error) {
		return alert.New(alert.Options{
			Dir:       filepath.Join(cfg.DataDir, "alerting"),
			Queryable: ms.store.DB(), Appendable: ms.store.DB(), QueryEngine: ms.store.Engine(),
			RuleFiles: cfg.RuleFiles, EvalInterval: cfg.MetricsScrapeInterval,
			ConfigFile: cfg.AlertConfig, Alertmanagers: cfg.Alertmanagers,
			ExternalURL: api, OutboxRetention: cfg.AlertOutboxRetention,
			Registerer: reg, Log: log.With("component", "alerting"),
		})
	})
	if err != nil {
		return nil, fmt.Errorf("alerting: %w", err)
	}
	rules, err := startServiceRules(ctx, eng, ms, clusters, api, log.With("component", "alerting"))
	if err != nil {
		return nil, err
	}
	server.AlertsAPI{Engine: eng}.Register(srv)
	g.Go(func() error { return leader.Gate(ctx, eng.run) })
	g.Go(func() error { return rules.run(ctx, max(5*time.Second, cfg.MetricsScrapeInterval)) })
	return eng, nil
}
