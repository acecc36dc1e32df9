package main

import (
	"context"
	"fmt"
	"log/slog"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/pave-platform/pave/internal/fleet"
)

// connectKubernetes builds a registered Kubernetes cluster's release seams.
var connectKubernetes = fleet.KubernetesConnector(slog.Default())

// probeKubernetes asks the cluster's API server for /readyz.
func probeKubernetes(ctx context.Context, registry *fleet.Registry, c fleet.Cluster) error {
	kc, err := registry.Clients(c)
	if err != nil {
		return err
	}
	if _, err := kc.Kube.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		if apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err) {
			return fmt.Errorf("cluster %s: not authorised: the API server refused the kubeconfig's credentials (%v); check its user", c.Name, err)
		}
		return fmt.Errorf("cluster %s: API server /readyz: %w", c.Name, err)
	}
	return nil
}
