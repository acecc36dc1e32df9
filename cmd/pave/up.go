package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/pave-platform/pave/internal/alert"
	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/config"
	"github.com/pave-platform/pave/internal/datadir"
	"github.com/pave-platform/pave/internal/fleet"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/telemetry"
	"github.com/pave-platform/pave/web"
)

func init() { register(upCommand) }

func upCommand(_ *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the control plane on this machine (embedded mode)",
		Long: `Run the Pave control plane: HTTP API and web UI, OTLP intake, gateway, local
runtime and release engine, with state in --data-dir. Settings come from
flags, PAVE_* environment variables and pave.yaml, in that order of precedence.`,
		Args: cobra.NoArgs,
	}
	loader := config.Bind(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := loader.Load(os.Getenv)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		return runUp(ctx, cfg, cmd.ErrOrStderr())
	}
	return cmd
}

// listeners binds every address first, so a port in use fails start-up
// with the setting's name before anything else starts. With several
// embedded clusters, gateway is the edge and each cluster's gateway gets
// a free loopback port.
type listeners struct {
	api, otlp, otlpGRPC, gateway net.Listener
	clusters                     []net.Listener
}

func listen(cfg config.Config) (*listeners, error) {
	var l listeners
	for _, b := range []struct {
		name, addr string
		dst        *net.Listener
	}{{"http-addr", cfg.HTTPAddr, &l.api}, {"otlp-addr", cfg.OTLPAddr, &l.otlp}, {"gateway-addr", cfg.GatewayAddr, &l.gateway}} {
		ln, err := net.Listen("tcp", b.addr)
		if err != nil {
			l.close()
			return nil, fmt.Errorf("setting %s: cannot listen on %s: %w", b.name, b.addr, err)
		}
		*b.dst = ln
	}
	if cfg.OTLPGRPCAddr != "" {
		ln, err := net.Listen("tcp", cfg.OTLPGRPCAddr)
		if err != nil {
			l.close()
			return nil, fmt.Errorf("setting otlp-grpc-addr: cannot listen on %s: %w", cfg.OTLPGRPCAddr, err)
		}
		l.otlpGRPC = ln
	}
	if len(cfg.Clusters) == 1 {
		l.clusters = []net.Listener{l.gateway}
		return &l, nil
	}
	for _, name := range cfg.Clusters {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			l.close()
			return nil, fmt.Errorf("cluster %s: gateway: %w", name, err)
		}
		l.clusters = append(l.clusters, ln)
	}
	return &l, nil
}

func (l *listeners) close() {
	for _, ln := range append([]net.Listener{l.api, l.otlp, l.otlpGRPC, l.gateway}, l.clusters...) {
		if ln != nil {
			ln.Close()
		}
	}
}

func runUp(ctx context.Context, cfg config.Config, logOut io.Writer) error {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("setting data-dir: %w", err)
	}
	// One control plane per data directory, before anything in it is read.
	lock, err := datadir.Acquire(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("setting data-dir: %w", err)
	}
	defer lock.Release()
	store, err := openState(ctx, cfg) // issue 21: sqlite or postgres (up_state.go)
	if err != nil {
		return err
	}
	defer store.Close()

	tlsConfig, err := serverTLS(cfg)
	if err != nil {
		return err
	}
	ls, err := listen(cfg)
	if err != nil {
		return err
	}
	defer ls.close()
	ls.withTLS(tlsConfig)
	_ = lock.SetAddress(ls.api.Addr().String())

	tokens := auth.Tokens{Store: store}
	if err := startBuildCache(ctx, cfg, tokens, log); err != nil {
		return err
	}
	sec, err := setUpSecurity(ctx, cfg, tokens, ls.api.Addr(), log)
	if err != nil {
		return err
	}
	open := config.IsLoopback(cfg.HTTPAddr) && !cfg.RequireAuth
	srv := server.New(server.Options{Tokens: tokens, Open: open, AllowedHosts: sec.hosts, RunRoots: sec.runRoots, LocalTokenFile: sec.tokenFile, Log: log})
	ui, _ := fs.Sub(web.Static, "static")
	srv.ServeUI(ui)

	// Every log line and span the services send; the intake acknowledges
	// only what is durable, so it opens before the OTLP listener serves.
	tel, telStats, err := openTelemetry(ctx, cfg, log) // embedded or VictoriaLogs (up_telemetry_store.go)
	if err != nil {
		return err
	}
	defer tel.Close()
	server.TelemetryAPI{Store: tel, Stats: telStats}.Register(srv)

	// The embedded clusters: each a local runtime (services as supervised
	// processes that adopt what a previous `pave up` left running) and a
	// gateway whose stored weights are re-applied before it serves.
	multi := len(cfg.Clusters) > 1
	if multi && cfg.Edge != "" {
		return fmt.Errorf("setting edge %q: several embedded clusters (--clusters %s) are always behind Pave's edge gateway; the edge setting is for Kubernetes clusters", cfg.Edge, strings.Join(cfg.Clusters, ","))
	}
	var clusters clusterSet
	defer func() {
		for _, c := range clusters {
			c.close()
		}
	}()
	for i, name := range cfg.Clusters {
		c, err := openLocalCluster(ctx, cfg, name, multi, store, ls.clusters[i], tel, ls.otlp.Addr().String(), log)
		if err != nil {
			return err
		}
		clusters = append(clusters, c)
	}
	registry := &fleet.Registry{Store: store, DataDir: cfg.DataDir}
	dcs := make([]string, len(clusters))
	for i, c := range clusters {
		dcs[i] = c.datacenter
	}
	if err := registry.SyncLocal(ctx, cfg.Clusters, dcs); err != nil {
		return err
	}
	if err := recheckKubeconfigs(ctx, registry, log); err != nil {
		return err
	}
	server.RuntimeAPI{Target: clusters}.Register(srv)
	ms, err := openMetrics(cfg, srv, clusters, log) // issue 15: the metrics store (up_metrics.go)
	if err != nil {
		return err
	}
	defer ms.close()
	registerStateMetrics(ms.store.Registry, store) // issue 21: the state store's group commits (up_state.go)

	g, gctx := errgroup.WithContext(ctx)
	// issue 21: the release engine and the fleet controller run on the
	// elected leader only, through leader.Gate (up_state.go).
	gctx = startLeader(gctx, g, cfg, store, ls.api.Addr(), srv, log)
	defer startRunners(gctx, cfg, srv, registry, log)() // issue 19: runner pools (up_runners.go), scaled by the leader only
	serve := func(name string, ln net.Listener, h http.Handler) {
		hs := newHTTPServer(h)
		g.Go(func() error {
			err := hs.Serve(ln)
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return fmt.Errorf("%s: %w", name, err)
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer cancel()
			return hs.Shutdown(sctx)
		})
	}
	serve("api", ls.api, apiHandler(gctx, srv, cfg, log)) // issue 21: a standby forwards the leader-only routes (up_forward.go)
	ingest := ingestAuth(cfg, tokens, log.With("component", "otlp"))
	serve("otlp", ls.otlp, guardOTLP(ls.otlp, telemetry.NewIntake(tel, telemetry.Limits{}, log.With("component", "otlp")), ingest, sec.hosts, log.With("component", "otlp")))
	if ls.otlpGRPC != nil {
		grpcIntake := telemetry.NewGRPCIntake(tel, telemetry.Limits{}, log.With("component", "otlp-grpc"))
		if !isLoopbackAddr(ls.otlpGRPC.Addr()) {
			grpcIntake.SetAuth(ingest)
		}
		g.Go(func() error { return grpcIntake.Serve(gctx, ls.otlpGRPC) })
	}
	for _, c := range clusters {
		c.start(gctx, g)
	}
	ms.start(gctx, g)
	alerts, err := startAlerts(gctx, g, cfg, srv, ms, clusters, log) // issue 16: alerting (up_alerts.go, up_slo.go)
	if err != nil {
		return err
	}
	probe := clusterProber{clusters: clusters, registry: registry}
	clustersAPI := server.ClustersAPI{Registry: registry, Probe: probe, LocalKey: sec.localKey, Gateway: func(name string) string {
		if c := clusters.byName(name); c != nil && !c.isLost() {
			return c.ln.Addr().String()
		}
		return ""
	}}
	if multi {
		// Several clusters: the gateway the user reaches is an edge that
		// splits each service between the clusters' gateways, and the
		// fleet controller moves those shares for drains and failovers.
		edge := startEdge(gctx, g, cfg, ls.gateway, clusters, registry, probe, log)
		// Prometheus sees the edge's per-cluster series here.
		srv.Handle("GET /metrics", edge.MetricsHandler())
		clustersAPI.Lose = func(ctx context.Context, name string) (int, error) {
			c := clusters.byName(name)
			if c == nil {
				return 0, fmt.Errorf("%w: no embedded cluster named %s", fleet.ErrNotFound, name)
			}
			log.Warn("losing a cluster on request", "cluster", name)
			return c.lose(ctx)
		}
	} else {
		// Prometheus can scrape the gateway's per-version RED metrics here.
		srv.Handle("GET /metrics", clusters[0].gw.MetricsHandler())
	}
	clustersAPI.Register(srv)
	local := map[string]release.Cluster{}
	for _, c := range clusters {
		local[c.name] = c.seams()
	}
	eng := startReleaseEngine(gctx, g, store, &fleet.ReleaseFleet{Registry: registry, Local: local, Connect: connectKubernetes}, srv, log,
		release.WithAlerts(alerts),                         // issue 16: spec.analysis.abortOnAlerts
		release.WithTraffic(metricsTraffic{ms.store.DB()}), // issue 20: status.forecast (release_forecast.go)
		releaseWorkers(cfg))                                // issue 21: releases reconciled at once
	alerts.SetReleases(alert.ReleaseLookup{Engine: eng}) // issue 16: alerts name the release they fire during
	server.TrafficAPI{Router: clusters, Live: clusters, Releases: eng}.Register(srv)
	registerFleetOfServices(srv, cfg, tel, eng) // issue 22: services_up.go
	startProductionEdge(gctx, g, cfg, registry, probe, eng, log)

	srv.SetReady(true)
	scheme := "http://"
	if tlsConfig != nil {
		scheme = "https://"
	}
	log.Info("pave is up", "api", scheme+ls.api.Addr().String(), "otlp", ls.otlp.Addr().String(), "otlp_grpc", cfg.OTLPGRPCAddr,
		"gateway", ls.gateway.Addr().String(), "clusters", strings.Join(cfg.Clusters, ","), "data_dir", cfg.DataDir,
		"auth", map[bool]string{true: "reads open on loopback, changes need a token", false: "tokens required"}[open], "admin_token_file", sec.tokenFile)
	err = g.Wait()
	log.Info("pave stopped")
	return err
}
