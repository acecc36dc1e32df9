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

// AutoscalingRunnerSetGVR is ARC's runner scale set resource.
var AutoscalingRunnerSetGVR = schema.GroupVersionResource{Group: "actions.github.com", Version: "v1alpha1", Resource: "autoscalingrunnersets"}

// kubernetesTarget sets an ARC AutoscalingRunnerSet's minRunners to the
// pool's desired count and maxRunners to its max, by server-side apply
// with the field manager "pave": only those two fields become Pave's;
// the rest of the set stays its owner's (Helm, the team). ARC itself
// adds a runner per job it is assigned above minRunners, so a pool on
// this target should set queueScaleUp: false and leave the queue to ARC.
type kubernetesTarget struct {
	client    dynamic.Interface
	namespace string
	name      string
	max       int
}

// NewKubernetesTarget returns the target of pool p on cluster client c:
// its AutoscalingRunnerSet, or its Deployment (target_deployment.go).
func NewKubernetesTarget(p RunnerPool, c dynamic.Interface) Target {
	if p.Spec.Target.Kubernetes.Deployment != "" {
		return NewDeploymentTarget(p, c)
	}
	ns, name, _ := strings.Cut(p.Spec.Target.Kubernetes.AutoscalingRunnerSet, "/")
	return &kubernetesTarget{client: c, namespace: ns, name: name, max: p.Spec.Max}
}

func (t *kubernetesTarget) Scale(ctx context.Context, n int) (int, error) {
	ref := existingObject{
		gvr: AutoscalingRunnerSetGVR, apiVersion: "actions.github.com/v1alpha1", kind: "AutoscalingRunnerSet",
		namespace: t.namespace, name: t.name,
		// Apply would create a set that does not exist, without the fields
		// only its owner knows (githubConfigUrl, the runner template).
		missing: "install it first (ARC's gha-runner-scale-set chart)",
	}
	if err := ref.applySpec(ctx, t.client, map[string]any{"minRunners": int64(n), "maxRunners": int64(t.max)}); err != nil {
		return 0, err
	}
	return n, nil
}

// existingObject is a resource another owner created (Helm, a team) whose
// few spec fields Pave sets.
type existingObject struct {
	gvr              schema.GroupVersionResource
	apiVersion, kind string
	namespace, name  string
	missing          string // how to fix a missing object
}

// applySpec sets the given spec fields by server-side apply with the
// field manager "pave", so only those fields become Pave's and the rest
// stays its owner's. A missing object is an error: apply would create it
// without what only its owner knows.
func (o existingObject) applySpec(ctx context.Context, c dynamic.Interface, spec map[string]any) error {
	res := c.Resource(o.gvr).Namespace(o.namespace)
	if _, err := res.Get(ctx, o.name, metav1.GetOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("%s %s/%s does not exist: %s", o.kind, o.namespace, o.name, o.missing)
		}
		return fmt.Errorf("%s %s/%s: %w", o.kind, o.namespace, o.name, err)
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": o.apiVersion,
		"kind":       o.kind,
		"metadata":   map[string]any{"name": o.name, "namespace": o.namespace},
		"spec":       spec,
	}}
	if _, err := res.Apply(ctx, o.name, obj, metav1.ApplyOptions{FieldManager: kube.FieldManager, Force: true}); err != nil {
		return fmt.Errorf("%s %s/%s: %w", o.kind, o.namespace, o.name, err)
	}
	return nil
}

// Close leaves the runner set as it is: ARC keeps running it.
func (t *kubernetesTarget) Close() error { return nil }
