package main

import (
	"context"
	"fmt"

	"github.com/pave-platform/pave/internal/fleet"
	"github.com/pave-platform/pave/internal/release"
)

// connectKubernetes builds a Kubernetes cluster's release seams.
func connectKubernetes(ctx context.Context, c fleet.Cluster, kubeconfig string) (release.Cluster, error) {
	return release.Cluster{}, fmt.Errorf("cluster %s: not connected yet", c.Name)
}

func probeKubernetes(ctx context.Context, c fleet.Cluster) error {
	return fmt.Errorf("cluster %s: not connected yet", c.Name)
}
