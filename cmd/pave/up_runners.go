package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/config"
	"github.com/pave-platform/pave/internal/runners"
	"github.com/pave-platform/pave/internal/server"
)

// startRunners serves runner pools (issue 19) and reconciles them every
// 10 s until the returned stop, which stops the local runner processes.
// Pools live in memory: re-apply them from Git after a restart.
func startRunners(ctx context.Context, cfg config.Config, srv *server.Server, log *slog.Logger) (stop func()) {
	c := runners.NewController(runners.NewQueue())
	srv.RegisterRunners(c, func() string { return cfg.GitHubWebhookSecret })
	if cfg.GitHubWebhookSecret == "" {
		log.Info("runner pools: no github-webhook-secret set; POST /hooks/github refuses every delivery")
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { c.Run(ctx, 10*time.Second) })
	return func() { cancel(); wg.Wait() }
}
