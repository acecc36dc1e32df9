package main

import (
	"context"
	"log/slog"

	"github.com/pave-platform/pave/internal/fleet"
)

// recheckKubeconfigs applies the kubeconfig policy to the clusters stored
// before it existed (docs/security.md): a refused one is marked failed
// with the reason and never connected; the start goes on for the others.
func recheckKubeconfigs(ctx context.Context, registry *fleet.Registry, log *slog.Logger) error {
	refused, err := registry.RecheckKubeconfigs(ctx)
	for _, r := range refused {
		log.Error("kubeconfig refused at start; the cluster is not used", "err", r)
	}
	return err
}
