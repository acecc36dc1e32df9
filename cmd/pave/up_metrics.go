package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/pave-platform/pave/internal/config"
	"github.com/pave-platform/pave/internal/metrics"
	"github.com/pave-platform/pave/internal/runtime"
	"github.com/pave-platform/pave/internal/server"
)

// metricsStore is the embedded metrics store of `pave up` and what feeds
// it targets: every ready instance of every service of every embedded
// cluster (from the runtime), each cluster's gateway and Pave itself.
// Kubernetes clusters are not scraped: their Prometheus is the source.
type metricsStore struct {
	store    *metrics.Store
	clusters clusterSet
	// self serves the in-process targets (the gateways' and Pave's own
	// metrics) on a loopback port, so Prometheus' scraper reaches them
	// like any other target.
	self     net.Listener
	interval time.Duration
	log      *slog.Logger
}

// openMetrics opens the store under DATA_DIR/metrics (replaying its WAL)
// and mounts its Prometheus API on srv.
func openMetrics(cfg config.Config, srv *server.Server, clusters clusterSet, log *slog.Logger) (*metricsStore, error) {
	size, err := cfg.MetricsRetentionBytes()
	if err != nil {
		return nil, fmt.Errorf("setting metrics-retention-size: %w", err)
	}
	limit, _ := strconv.Atoi(cfg.MetricsSampleLimit)
	log = log.With("component", "metrics")
	st, err := metrics.Open(metrics.Options{Dir: filepath.Join(cfg.DataDir, "metrics"), ScrapeInterval: cfg.MetricsScrapeInterval,
		Retention: cfg.MetricsRetention, RetentionSize: size, SampleLimit: limit, RemoteWrite: cfg.MetricsRemoteWrite, Log: log})
	if err != nil {
		return nil, err
	}
	self, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("metrics: loopback listener for Pave's own targets: %w", err)
	}
	routes := make([]server.MetricsRoute, len(metrics.APIPaths))
	for i, p := range metrics.APIPaths {
		routes[i] = server.MetricsRoute{Path: p.Path, Post: p.Post}
	}
	server.MetricsAPI{Handler: st.API(), Routes: routes}.Register(srv)
	return &metricsStore{store: st, clusters: clusters, self: self, interval: cfg.MetricsScrapeInterval, log: log}, nil
}

// start scrapes in g until ctx ends.
func (m *metricsStore) start(ctx context.Context, g *errgroup.Group) {
	mux := http.NewServeMux()
	mux.Handle("GET /pave/metrics", promhttp.HandlerFor(m.store.Registry, promhttp.HandlerOpts{}))
	var gateways []metrics.Target
	for _, c := range m.clusters {
		mux.Handle("GET /gateway/"+c.name+"/metrics", c.gw.MetricsHandler())
		gateways = append(gateways, metrics.Target{Address: m.self.Addr().String(), Path: "/gateway/" + c.name + "/metrics",
			Labels: map[string]string{"cluster": c.name, "instance": "gateway-" + c.name}})
	}
	m.store.SetTargets(metrics.JobGateway, gateways)
	m.store.SetTargets(metrics.JobPave, []metrics.Target{{Address: m.self.Addr().String(), Path: "/pave/metrics",
		Labels: map[string]string{"instance": "pave"}}})
	hs := newHTTPServer(mux)
	g.Go(func() error {
		if err := hs.Serve(m.self); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("metrics self-targets: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		return hs.Close()
	})
	g.Go(func() error { return m.store.Run(ctx) })
	g.Go(func() error { m.followRuntime(ctx); return nil })
}

// followRuntime keeps the services' targets equal to the ready instances,
// checking a few times per scrape interval.
func (m *metricsStore) followRuntime(ctx context.Context) {
	every := max(time.Second, m.interval/3)
	for {
		m.store.SetTargets(metrics.JobServices, m.serviceTargets(ctx))
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

func (m *metricsStore) serviceTargets(ctx context.Context) []metrics.Target {
	var ts []metrics.Target
	for _, c := range m.clusters {
		if c.isLost() {
			continue
		}
		sts, err := c.rt.List(ctx)
		if err != nil {
			m.log.Warn("listing instances to scrape", "cluster", c.name, "err", err)
			continue
		}
		for _, st := range sts {
			for _, in := range st.Instances {
				if in.State != runtime.StateReady || in.Port == 0 {
					continue
				}
				ts = append(ts, metrics.Target{Address: net.JoinHostPort("127.0.0.1", strconv.Itoa(in.Port)), Labels: map[string]string{
					"service": st.Service, "version": st.Version, "instance": in.Name, "cluster": c.name}})
			}
		}
	}
	return ts
}

// close closes the store after Run has stopped.
func (m *metricsStore) close() {
	m.self.Close()
	if err := m.store.Close(); err != nil {
		m.log.Error("closing the metrics store", "err", err)
	}
}
