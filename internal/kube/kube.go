// Package kube connects Pave to Kubernetes clusters: it loads a kubeconfig
// with errors that name the file, context and cluster, and bundles the
// typed clients the runtime target (Deployments, Services), the traffic
// routers (Istio, Gateway API) and the edge providers use.
package kube

import (
	"errors"
	"fmt"
	"os"
	"sort"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
)

// FieldManager is the server-side-apply field manager of every object
// Pave writes, so fields owned by the team or other tools stay theirs.
const FieldManager = "pave"

// Cluster is one Kubernetes cluster's clients. Tests build it over fakes.
type Cluster struct {
	Name    string
	Config  *rest.Config
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	Istio   istioclient.Interface
	Gateway gatewayclient.Interface
}

// ErrKubeconfig marks a kubeconfig that cannot be read or used.
var ErrKubeconfig = errors.New("bad kubeconfig")

// Load reads a kubeconfig file and picks a context ("" = its current
// context).
func Load(path, context string) (*rest.Config, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: no kubeconfig file given; pass --kubeconfig FILE", ErrKubeconfig)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKubeconfig, err)
	}
	return Parse(data, path, context)
}

// Parse reads a kubeconfig's content; source names it in errors.
func Parse(data []byte, source, context string) (*rest.Config, error) {
	raw, err := clientcmd.Load(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s does not parse: %v", ErrKubeconfig, source, err)
	}
	if context != "" {
		if _, ok := raw.Contexts[context]; !ok {
			names := make([]string, 0, len(raw.Contexts))
			for n := range raw.Contexts {
				names = append(names, n)
			}
			sort.Strings(names)
			return nil, fmt.Errorf("%w: %s has no context %q (it has %v)", ErrKubeconfig, source, context, names)
		}
	} else if raw.CurrentContext == "" {
		return nil, fmt.Errorf("%w: %s has no current-context; name one with --context", ErrKubeconfig, source)
	}
	cfg, err := clientcmd.NewNonInteractiveClientConfig(*raw, context, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrKubeconfig, source, err)
	}
	return cfg, nil
}

// New builds the clients of one cluster.
func New(name string, cfg *rest.Config) (*Cluster, error) {
	c := &Cluster{Name: name, Config: cfg}
	var err error
	if c.Kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	if c.Dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	if c.Istio, err = istioclient.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	if c.Gateway, err = gatewayclient.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	return c, nil
}
