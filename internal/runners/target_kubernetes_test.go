package runners

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/pave-platform/pave/internal/kube/kubetest"
)

// arcCRD is a minimal AutoscalingRunnerSet CRD: ARC's group, kind and
// the two fields Pave writes typed, the rest preserved.
var arcCRD = map[string]any{
	"apiVersion": "apiextensions.k8s.io/v1",
	"kind":       "CustomResourceDefinition",
	"metadata":   map[string]any{"name": "autoscalingrunnersets.actions.github.com"},
	"spec": map[string]any{
		"group": "actions.github.com",
		"names": map[string]any{"kind": "AutoscalingRunnerSet", "listKind": "AutoscalingRunnerSetList", "plural": "autoscalingrunnersets", "singular": "autoscalingrunnerset"},
		"scope": "Namespaced",
		"versions": []any{map[string]any{
			"name": "v1alpha1", "served": true, "storage": true,
			"schema": map[string]any{"openAPIV3Schema": map[string]any{
				"type": "object",
				"properties": map[string]any{
					"spec": map[string]any{
						"type":                                 "object",
						"x-kubernetes-preserve-unknown-fields": true,
						"properties": map[string]any{
							"minRunners":      map[string]any{"type": "integer", "minimum": 0},
							"maxRunners":      map[string]any{"type": "integer", "minimum": 0},
							"githubConfigUrl": map[string]any{"type": "string"},
						},
					},
				},
			}},
		}},
	},
}

func TestKubernetesTargetPatchesARCRunnerSet(t *testing.T) {
	c := kubetest.Start(t, "arc")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dyn := c.Clients.Dynamic
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	if _, err := crds.Create(ctx, &unstructured.Unstructured{Object: arcCRD}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sets := dyn.Resource(AutoscalingRunnerSetGVR).Namespace("default")
	helmSet := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "actions.github.com/v1alpha1", "kind": "AutoscalingRunnerSet",
		"metadata": map[string]any{"name": "linux", "namespace": "default"},
		"spec":     map[string]any{"githubConfigUrl": "https://github.com/acme", "minRunners": int64(0), "maxRunners": int64(10)},
	}}
	for { // until the CRD is Established
		_, err := sets.Apply(ctx, "linux", helmSet, metav1.ApplyOptions{FieldManager: "helm"})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the ARC CRD never became usable: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p := localPool(t, "")
	p.Spec.Target = TargetSpec{Kubernetes: &KubernetesTarget{Cluster: "arc", AutoscalingRunnerSet: "default/linux"}}
	target := NewKubernetesTarget(p, dyn)
	if n, err := target.Scale(ctx, 3); err != nil || n != 3 {
		t.Fatalf("scale to 3: %d %v", n, err)
	}
	got, err := sets.Get(ctx, "linux", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	min, _, _ := unstructured.NestedInt64(got.Object, "spec", "minRunners")
	max, _, _ := unstructured.NestedInt64(got.Object, "spec", "maxRunners")
	url, _, _ := unstructured.NestedString(got.Object, "spec", "githubConfigUrl")
	if min != 3 || max != 4 || url != "https://github.com/acme" {
		t.Fatalf("want minRunners 3, maxRunners 4 (the pool's max) and helm's URL kept, got %d %d %q", min, max, url)
	}
	owners := map[string]string{}
	for _, m := range got.GetManagedFields() {
		owners[m.Manager] = string(m.FieldsV1.Raw)
	}
	if !strings.Contains(owners["pave"], "minRunners") || !strings.Contains(owners["helm"], "githubConfigUrl") || strings.Contains(owners["helm"], "minRunners") {
		t.Fatalf("field ownership: %v", owners)
	}

	// A set that does not exist is not created half-made.
	p.Spec.Target.Kubernetes.AutoscalingRunnerSet = "default/missing"
	if _, err := NewKubernetesTarget(p, dyn).Scale(ctx, 1); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing set: want an error saying so, got %v", err)
	}
	if _, err := sets.Get(ctx, "missing", metav1.GetOptions{}); err == nil {
		t.Fatal("Scale created the missing runner set")
	}

	// Unreachable: an error, which the controller reports and retries.
	c.Stop()
	if _, err := target.Scale(ctx, 2); err == nil {
		t.Fatal("scale on a stopped API server: want an error")
	}
}
