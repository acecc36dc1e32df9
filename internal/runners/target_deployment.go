package runners

import (
	"context"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

var deploymentGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}

// deploymentTarget sets the replicas of a plain Deployment of runners
// (for example actions-runner pods that register themselves), by
// server-side apply with the field manager "pave": spec.replicas becomes
// Pave's and the rest (the pod template, the selector) stays its
// owner's. Unlike ARC, a Deployment knows nothing of the queue, so such
// a pool keeps queueScaleUp on and Pave follows the queue too.
type deploymentTarget struct {
	client    dynamic.Interface
	namespace string
	name      string
}

// NewDeploymentTarget returns the target of pool p, whose
// spec.target.kubernetes.deployment names a Deployment on cluster c.
func NewDeploymentTarget(p RunnerPool, c dynamic.Interface) Target {
	ns, name, _ := strings.Cut(p.Spec.Target.Kubernetes.Deployment, "/")
	return &deploymentTarget{client: c, namespace: ns, name: name}
}

func (t *deploymentTarget) Scale(ctx context.Context, n int) (int, error) {
	ref := existingObject{
		gvr: deploymentGVR, apiVersion: "apps/v1", kind: "Deployment",
		namespace: t.namespace, name: t.name,
		missing: "create the runner Deployment first",
	}
	if err := ref.applySpec(ctx, t.client, map[string]any{"replicas": int64(n)}); err != nil {
		return 0, err
	}
	return n, nil
}

// Close leaves the Deployment as it is.
func (t *deploymentTarget) Close() error { return nil }
