package runtime

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// `pave build` prints REGISTRY/NAME@sha256:...; the Deployment runs exactly
// that artefact, the reference unchanged (no tag to move under it).
func TestKubernetesDeployKeepsADigestReference(t *testing.T) {
	k, cs := newFakeKubernetes(t)
	ref := "127.0.0.1:5000/acme/orders@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if err := k.Deploy(context.Background(), Deployment{Service: "orders", Version: "v2", Image: ref, Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	dep, err := cs.AppsV1().Deployments("shop").Get(context.Background(), "orders-v2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := dep.Spec.Template.Spec.Containers[0].Image; got != ref {
		t.Fatalf("container image %q, want %q", got, ref)
	}
}
