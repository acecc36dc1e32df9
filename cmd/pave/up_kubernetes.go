package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/pave-platform/pave/internal/fleet"
	"github.com/pave-platform/pave/internal/kube"
)

// connectKubernetes builds a registered Kubernetes cluster's release seams.
var connectKubernetes = fleet.KubernetesConnector(slog.Default())

// kubeProbes keeps one set of clients per registered cluster for probing.
var kubeProbes struct {
	sync.Mutex
	clients map[string]*kube.Cluster
	added   map[string]string
}

// probeKubernetes asks the cluster's API server for /readyz.
func probeKubernetes(ctx context.Context, c fleet.Cluster, kubeconfig string) error {
	kubeProbes.Lock()
	if kubeProbes.clients == nil {
		kubeProbes.clients, kubeProbes.added = map[string]*kube.Cluster{}, map[string]string{}
	}
	kc := kubeProbes.clients[c.Name]
	if kc == nil || kubeProbes.added[c.Name] != c.Added.String() {
		cfg, err := kube.Load(kubeconfig, c.Context)
		if err == nil {
			kc, err = kube.New(c.Name, cfg)
		}
		if err != nil {
			kubeProbes.Unlock()
			return fmt.Errorf("cluster %s: %w", c.Name, err)
		}
		kubeProbes.clients[c.Name], kubeProbes.added[c.Name] = kc, c.Added.String()
	}
	kubeProbes.Unlock()
	if _, err := kc.Kube.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		if apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err) {
			return fmt.Errorf("cluster %s: not authorised: the API server refused the kubeconfig's credentials (%v); check its user", c.Name, err)
		}
		return fmt.Errorf("cluster %s: API server /readyz: %w", c.Name, err)
	}
	return nil
}
