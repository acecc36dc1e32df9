package fleet

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pave-platform/pave/internal/kube"
	"github.com/pave-platform/pave/internal/metricsource"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/runtime"
	"github.com/pave-platform/pave/internal/traffic"
)

// KubernetesConnector connects registered Kubernetes clusters: the
// Kubernetes runtime target, the cluster's traffic router (Istio or
// Gateway API) and its Prometheus as the metric source (Istio's metrics
// with the Istio router, kit's RED metrics with Gateway API).
func KubernetesConnector(log *slog.Logger) Connector {
	return func(_ context.Context, c Cluster, kc *kube.Cluster) (release.Cluster, error) {
		return KubernetesSeams(kc, c, log)
	}
}

// KubernetesSeams builds the release seams over one cluster's clients.
func KubernetesSeams(kc *kube.Cluster, c Cluster, log *slog.Logger) (release.Cluster, error) {
	target, err := runtime.NewKubernetes(runtime.KubernetesOptions{Cluster: kc, Namespace: c.Namespace, Datacenter: c.Datacenter, Log: log})
	if err != nil {
		return release.Cluster{}, err
	}
	router, err := traffic.NewKubernetesRouter(c.Router, kc, c.Namespace)
	if err != nil {
		return release.Cluster{}, err
	}
	out := release.Cluster{Name: c.Name, Router: router, Target: ReleaseTarget(target)}
	if c.Prometheus == "" {
		out.Metrics = brokenSeams{fmt.Errorf("cluster %s has no Prometheus to judge releases with; register it with --prometheus URL", c.Name)}
		return out, nil
	}
	preset := "istio"
	if c.Router == "gatewayapi" {
		preset = "kit"
	}
	prom, err := metricsource.NewPrometheus(metricsource.PrometheusOptions{URL: c.Prometheus, Preset: preset, Namespace: c.Namespace})
	if err != nil {
		return release.Cluster{}, fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	out.Metrics = prom
	return out, nil
}
