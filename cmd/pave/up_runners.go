package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/config"
	"github.com/pave-platform/pave/internal/fleet"
	"github.com/pave-platform/pave/internal/leader"
	"github.com/pave-platform/pave/internal/runners"
	"github.com/pave-platform/pave/internal/server"
)

// startRunners serves runner pools (issue 19) and reconciles them every
// 10 s until the returned stop, which stops the local runner processes.
// Pools, the queue, its history and the delivery ids seen are kept in
// the state store (registry.Store), so they are back after a restart. A
// pool's kubernetes target names a cluster registered with `pave
// cluster add`. With github-repositories set, the queue is also
// reconciled with the GitHub REST API every github-reconcile-interval.
func startRunners(ctx context.Context, cfg config.Config, srv *server.Server, registry *fleet.Registry, log *slog.Logger) (stop func()) {
	q, err := runners.OpenQueue(ctx, registry.Store)
	if err != nil {
		log.Error("runner pools are off: the runner queue could not be read from the state store", "err", err)
		return func() {}
	}
	c := runners.NewController(q, registry.Store)
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
	if err := c.Load(ctx); err != nil {
		log.Error("runner pools: some stored pools were not loaded", "err", err)
	}
	srv.RegisterRunners(c, func() string { return cfg.GitHubWebhookSecret })
	if cfg.GitHubWebhookSecret == "" {
		log.Info("runner pools: no github-webhook-secret set; POST /hooks/github refuses every delivery")
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// The leader alone scales the pools (issue 21): each term reloads them,
	// with what they had done, from the state store; a standby forwards
	// the runner routes to the leader (up_forward.go).
	wg.Go(func() {
		_ = leader.Gate(ctx, func(ctx context.Context) error {
			if err := c.Load(ctx); err != nil {
				log.Error("runner pools: some stored pools were not loaded", "err", err)
			}
			c.Run(ctx, 10*time.Second)
			return nil
		})
	})
	if len(cfg.GitHubRepositories) > 0 {
		api := runners.GitHubAPI{URL: cfg.GitHubAPIURL, Token: func() string { return cfg.GitHubToken }, Repos: cfg.GitHubRepositories}
		wg.Go(func() {
			_ = leader.Gate(ctx, func(ctx context.Context) error { reconcileGitHub(ctx, cfg, q, api, log); return nil })
		})
	}
	return func() { cancel(); wg.Wait() }
}

// reconcileGitHub reconciles the runner queue with the GitHub REST API
// every github-reconcile-interval until ctx ends.
func reconcileGitHub(ctx context.Context, cfg config.Config, q *runners.Queue, api runners.GitHubAPI, log *slog.Logger) {
	t := time.NewTicker(cfg.GitHubReconcileInterval)
	defer t.Stop()
	for {
		if st := q.ReconcileGitHub(ctx, api, time.Now); st.Error != "" && ctx.Err() == nil {
			log.Warn("runner queue: GitHub REST reconciliation", "err", st.Error, "changes", st.Changes)
		} else if st.Changes > 0 {
			log.Info("runner queue: GitHub REST reconciliation found events the webhook missed", "changes", st.Changes)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
