package runtime

import (
	"context"
	"errors"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sfake "k8s.io/client-go/kubernetes/fake"

	"github.com/pave-platform/pave/internal/kube"
)

func newFakeKubernetes(t *testing.T) (*Kubernetes, *k8sfake.Clientset) {
	t.Helper()
	cs := k8sfake.NewClientset()
	k, err := NewKubernetes(KubernetesOptions{Cluster: &kube.Cluster{Name: "seoul", Kube: cs}, Namespace: "shop", Datacenter: "kr-1"})
	if err != nil {
		t.Fatal(err)
	}
	return k, cs
}

func TestKubernetesDeployBuildsTheObjects(t *testing.T) {
	k, cs := newFakeKubernetes(t)
	ctx := context.Background()
	d := Deployment{Service: "orders", Version: "v2", Image: "registry.local/orders:v2", Replicas: 3, Env: map[string]string{"FLAG": "on"}}
	if err := k.Deploy(ctx, d); err != nil {
		t.Fatal(err)
	}
	dep, err := cs.AppsV1().Deployments("shop").Get(ctx, "orders-v2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *dep.Spec.Replicas != 3 || dep.Spec.Template.Labels["version"] != "v2" || dep.Spec.Selector.MatchLabels["version"] != "v2" {
		t.Errorf("deployment %+v", dep.Spec)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if c.Image != d.Image || env["PAVE_VERSION"] != "v2" || env["PAVE_CLUSTER"] != "seoul" || env["PAVE_DATACENTER"] != "kr-1" || env["FLAG"] != "on" || env["PORT"] != "8080" {
		t.Errorf("container %+v", c)
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness %+v", c.ReadinessProbe)
	}
	for name, sel := range map[string]string{"orders-v2": "v2", "orders": ""} {
		svc, err := cs.CoreV1().Services("shop").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("service %s: %v", name, err)
		}
		if svc.Spec.Selector["version"] != sel || svc.Spec.Selector["app.kubernetes.io/name"] != "orders" {
			t.Errorf("service %s selects %v", name, svc.Spec.Selector)
		}
	}
	err = k.Deploy(ctx, Deployment{Service: "orders", Version: "v3", Binary: "/bin/true", Replicas: 1})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "image" {
		t.Fatalf("a binary on Kubernetes: %v, want a field error on image", err)
	}
}

func TestKubernetesStatusFollowsTheDeploymentController(t *testing.T) {
	k, cs := newFakeKubernetes(t)
	ctx := context.Background()
	if err := k.Deploy(ctx, Deployment{Service: "orders", Version: "v2", Image: "img", Replicas: 2}); err != nil {
		t.Fatal(err)
	}
	set := func(st appsv1.DeploymentStatus, generation int64) {
		dep, _ := cs.AppsV1().Deployments("shop").Get(ctx, "orders-v2", metav1.GetOptions{})
		dep.Generation = generation
		dep.Status = st
		if _, err := cs.AppsV1().Deployments("shop").UpdateStatus(ctx, dep, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ready := func() int {
		st, err := k.Status(ctx, "orders", "v2")
		if err != nil {
			t.Fatal(err)
		}
		return st.Ready
	}
	if ready() != 0 {
		t.Fatal("ready without any status")
	}
	// Stale: the controller has not seen generation 2 yet.
	set(appsv1.DeploymentStatus{ObservedGeneration: 1, UpdatedReplicas: 2, AvailableReplicas: 2}, 2)
	if ready() != 0 {
		t.Fatal("ready on a stale observedGeneration")
	}
	set(appsv1.DeploymentStatus{ObservedGeneration: 2, UpdatedReplicas: 2, AvailableReplicas: 1}, 2)
	if ready() != 1 {
		t.Fatal("want 1 of 2 ready")
	}
	set(appsv1.DeploymentStatus{ObservedGeneration: 2, UpdatedReplicas: 2, AvailableReplicas: 2}, 2)
	if ready() != 2 {
		t.Fatal("want 2 of 2 ready")
	}
	set(appsv1.DeploymentStatus{ObservedGeneration: 2, Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing,
		Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "orders-v2-abc" has timed out progressing.`}}}, 2)
	_, err := k.Status(ctx, "orders", "v2")
	if !errors.Is(err, ErrRolloutFailed) || !strings.Contains(err.Error(), "cluster seoul: deployment shop/orders-v2") || !strings.Contains(err.Error(), "timed out progressing") {
		t.Fatalf("failed rollout: %v", err)
	}
	if _, err := k.Status(ctx, "orders", "v9"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "cluster seoul") {
		t.Fatalf("missing version: %v", err)
	}
	list, err := k.List(ctx)
	if err != nil || len(list) != 1 || list[0].Version != "v2" || list[0].Cluster != "seoul" {
		t.Fatalf("list %+v %v", list, err)
	}
	if err := k.Remove(ctx, "orders", "v2"); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Services("shop").Get(ctx, "orders", metav1.GetOptions{}); err == nil {
		t.Error("the service-wide Service outlived the last version")
	}
	if err := k.Remove(ctx, "orders", "v2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
}
