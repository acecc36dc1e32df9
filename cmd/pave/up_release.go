package main

import (
	"context"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pave-platform/pave/internal/gateway"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/stats"
)

// startReleaseEngine builds the release engine on the embedded data plane
// (the gateway's live statistics and router), registers its API and runs
// its reconcile loop every second in g. runUp calls it once a runtime
// target exists:
//
//	startReleaseEngine(gctx, g, store, router, target, gw, srv, log)
func startReleaseEngine(ctx context.Context, g *errgroup.Group, store state.Store, router release.Router, target release.Target,
	gw *gateway.Gateway, srv *server.Server, log *slog.Logger) *release.Engine {
	metrics := release.MetricsFunc(func(_ context.Context, service string) (stats.Snapshot, error) {
		return gw.Snapshot(service), nil
	})
	eng := release.NewEngine(store, router, target, metrics, release.WithLogger(log.With("component", "release")))
	server.ReleaseAPI{Engine: eng}.Register(srv)
	g.Go(func() error { return eng.Run(ctx, time.Second) })
	return eng
}
