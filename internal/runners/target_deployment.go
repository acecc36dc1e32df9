package runners

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/pave-platform/pave/internal/kube"
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
	res := t.client.Resource(deploymentGVR).Namespace(t.namespace)
	// Apply would try to create a missing Deployment without its template.
	if _, err := res.Get(ctx, t.name, metav1.GetOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return 0, fmt.Errorf("deployment %s/%s does not exist: create the runner Deployment first", t.namespace, t.name)
		}
		return 0, fmt.Errorf("deployment %s/%s: %w", t.namespace, t.name, err)
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata":   map[string]any{"name": t.name, "namespace": t.namespace},
		"spec":       map[string]any{"replicas": int64(n)},
	}}
	if _, err := res.Apply(ctx, t.name, obj, metav1.ApplyOptions{FieldManager: kube.FieldManager, Force: true}); err != nil {
		return 0, fmt.Errorf("deployment %s/%s: %w", t.namespace, t.name, err)
	}
	return n, nil
}

// Close leaves the Deployment as it is.
func (t *deploymentTarget) Close() error { return nil }
