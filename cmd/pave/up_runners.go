package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/config"
	"github.com/pave-platform/pave/internal/fleet"
	"github.com/pave-platform/pave/internal/runners"
	"github.com/pave-platform/pave/internal/server"
)

// startRunners serves runner pools (issue 19) and reconciles them every
// 10 s until the returned stop, which stops the local runner processes.
// A pool's kubernetes target names a cluster registered with `pave
// cluster add`. Pools live in memory: re-apply them from Git after a restart.
func startRunners(ctx context.Context, cfg config.Config, srv *server.Server, registry *fleet.Registry, log *slog.Logger) (stop func()) {
	c := runners.NewController(runners.NewQueue())
	c.NewTarget = func(p runners.RunnerPool) (runners.Target, error) {
		k := p.Spec.Target.Kubernetes
		if k == nil {
			return runners.NewLocalTarget(p), nil
		}
		cl, err := registry.Get(ctx, k.Cluster)
		if err == nil {
			clients, cerr := registry.Clients(cl)
			if cerr == nil {
				return runners.NewKubernetesTarget(p, clients.Dynamic), nil
			}
			err = cerr
		}
		return nil, &runners.FieldError{Path: "spec.target.kubernetes.cluster", Err: fmt.Errorf("%w: %q is not a registered Kubernetes cluster (pave cluster list): %w", runners.ErrInvalid, k.Cluster, err)}
	}
	srv.RegisterRunners(c, func() string { return cfg.GitHubWebhookSecret })
	if cfg.GitHubWebhookSecret == "" {
		log.Info("runner pools: no github-webhook-secret set; POST /hooks/github refuses every delivery")
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { c.Run(ctx, 10*time.Second) })
	return func() { cancel(); wg.Wait() }
}
