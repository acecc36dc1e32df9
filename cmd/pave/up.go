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
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/config"
	"github.com/pave-platform/pave/internal/gateway"
	"github.com/pave-platform/pave/internal/runtime"
	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/telemetry"
	"github.com/pave-platform/pave/internal/traffic"
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
// with the setting's name before anything else starts.
type listeners struct{ api, otlp, gateway net.Listener }

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
	return &l, nil
}

func (l *listeners) close() {
	for _, ln := range []net.Listener{l.api, l.otlp, l.gateway} {
		if ln != nil {
			ln.Close()
		}
	}
}

func runUp(ctx context.Context, cfg config.Config, logOut io.Writer) error {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))

	if len(cfg.Clusters) > 1 {
		// Say so rather than silently run one: several local clusters
		// behind an edge gateway are not built yet.
		return fmt.Errorf("invalid setting clusters: %q: embedded mode runs one local cluster so far; name one, e.g. --clusters local", strings.Join(cfg.Clusters, ","))
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("setting data-dir: %w", err)
	}
	store, err := state.OpenSQLite(filepath.Join(cfg.DataDir, "state.db"))
	if err != nil {
		return err
	}
	defer store.Close()

	ls, err := listen(cfg)
	if err != nil {
		return err
	}
	defer ls.close()

	open := config.IsLoopback(cfg.HTTPAddr) && !cfg.RequireAuth
	srv := server.New(server.Options{Tokens: auth.Tokens{Store: store}, Open: open, Log: log})
	ui, _ := fs.Sub(web.Static, "static")
	srv.ServeUI(ui)

	// Every log line and span the services send; the intake acknowledges
	// only what is durable, so it opens before the OTLP listener serves.
	cold, err := telemetry.OpenColdStore(ctx, cfg.TelemetryColdStore)
	if err != nil {
		return fmt.Errorf("--telemetry-cold-store: %w", err)
	}
	tel, err := telemetry.Open(ctx, telemetry.Options{Dir: filepath.Join(cfg.DataDir, "telemetry"), Blob: cold, Log: log.With("component", "telemetry")})
	if err != nil {
		return err
	}
	defer tel.Close()
	server.TelemetryAPI{Store: tel, Stats: tel.Stats}.Register(srv)

	// The embedded data plane; stored weights are re-applied before it
	// serves, so a restart keeps routing.
	gw := gateway.New(gateway.Options{Log: log.With("component", "gateway"),
		StickyHeader: cfg.GatewayStickyHeader, StickyCookie: cfg.GatewayStickyCookie,
		Cluster: cfg.Clusters[0], Datacenter: "local", AccessLog: &gatewayAccessLog{store: tel, log: log.With("component", "gateway")}})
	router, err := traffic.NewGatewayRouter(ctx, store, gw, log.With("component", "traffic"))
	if err != nil {
		log.Error("some stored routes could not be restored", "err", err)
	}
	server.TrafficAPI{Router: router, Live: gw}.Register(srv)
	// Prometheus can scrape the gateway's per-version RED metrics here.
	srv.Handle("GET /metrics", gw.MetricsHandler())

	// The local runtime: services as supervised processes whose ready
	// instances become the gateway's endpoints; it adopts the instances a
	// previous `pave up` left running.
	output := &runtimeOutput{store: tel, cluster: cfg.Clusters[0], datacenter: "local", log: log.With("component", "runtime")}
	rt, err := runtime.NewLocal(runtime.LocalOptions{Store: store, DataDir: cfg.DataDir, Cluster: cfg.Clusters[0], Datacenter: "local",
		OTLPEndpoint: "http://" + ls.otlp.Addr().String(), Endpoints: gw, Output: output, Log: log.With("component", "runtime")})
	if err != nil {
		return err
	}
	server.RuntimeAPI{Target: rt}.Register(srv)

	g, gctx := errgroup.WithContext(ctx)
	serve := func(name string, ln net.Listener, h http.Handler) {
		hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
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
	serve("api", ls.api, srv)
	serve("otlp", ls.otlp, telemetry.NewIntake(tel, telemetry.Limits{}, log.With("component", "otlp")))
	g.Go(func() error { return gw.Serve(gctx, ls.gateway) })
	g.Go(func() error { return rt.Run(gctx) })
	g.Go(func() error { return output.Run(gctx) })
	startReleaseEngine(gctx, g, store, router, releaseTarget{rt}, gw, srv, log)

	srv.SetReady(true)
	log.Info("pave is up", "api", "http://"+ls.api.Addr().String(), "otlp", ls.otlp.Addr().String(),
		"gateway", ls.gateway.Addr().String(), "data_dir", cfg.DataDir, "auth", map[bool]string{true: "open on loopback", false: "tokens required"}[open])
	err = g.Wait()
	log.Info("pave stopped")
	return err
}
