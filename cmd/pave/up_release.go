package main

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pave-platform/pave/internal/config"
	"github.com/pave-platform/pave/internal/leader"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/state"
)

// startReleaseEngine builds the release engine over the fleet's clusters
// (each with its router, runtime target and metrics), registers its API
// and runs its reconcile loop in g: every release is due each second,
// the release-workers setting reconcile them in parallel (internal/release's Run).
func startReleaseEngine(ctx context.Context, g *errgroup.Group, store state.Store, fleet release.Fleet, srv *server.Server, log *slog.Logger, opts ...release.Option) *release.Engine {
	eng := release.NewFleetEngine(store, fleet, append([]release.Option{release.WithLogger(log.With("component", "release"))}, opts...)...)
	server.ReleaseAPI{Engine: eng}.Register(srv)
	g.Go(func() error {
		return leader.Gate(ctx, func(ctx context.Context) error { return eng.Run(ctx, time.Second) }) // on the leader only (issue 21)
	})
	return eng
}

// releaseWorkers is the release-workers setting as an engine option (the
// setting is validated as a number from 1 to 256).
func releaseWorkers(cfg config.Config) release.Option {
	n, _ := strconv.Atoi(cfg.ReleaseWorkers)
	return release.WithWorkers(n)
}
