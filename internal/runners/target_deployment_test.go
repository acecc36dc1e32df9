package runners

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pave-platform/pave/internal/kube/kubetest"
)

// TestDeploymentTargetScalesReplicas: on a real kube-apiserver, a pool
// whose target is a Deployment sets its spec.replicas by server-side
// apply as "pave", leaving the template its owner's; the controller
// drives it from the queue; a missing Deployment is not created; an
// unreachable API server is an error.
func TestDeploymentTargetScalesReplicas(t *testing.T) {
	c := kubetest.Start(t, "runners")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	deps := c.Clients.Kube.AppsV1().Deployments("default")
	labels := map[string]string{"app": "runner"}
	_, err := deps.Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "runners", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "runner", Image: "ghcr.io/actions/actions-runner:2.321.0"}}},
			},
		},
	}, metav1.CreateOptions{FieldManager: "kubectl"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse([]byte(`{"apiVersion":"pave.dev/v1alpha1","kind":"RunnerPool","metadata":{"name":"dep"},
"spec":{"labels":["self-hosted","linux"],"min":1,"max":5,"target":{"kubernetes":{"cluster":"runners","deployment":"default/runners"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	ctl := newController(t)
	ctl.NewTarget = func(p RunnerPool) (Target, error) { return NewKubernetesTarget(p, c.Clients.Dynamic), nil }
	if err := ctl.Apply(ctx, p); err != nil {
		t.Fatal(err)
	}
	h := ctl.Queue.WebhookHandler(func() string { return secret }, time.Now)
	for i, id := range []string{"a", "b", "c"} {
		deliveryIn(t, h, id, "queued", int64(i+1), "acme/app")
	}
	ctl.Reconcile(ctx)
	if s := ctl.Status()[0]; s.Runners != 3 || s.TargetError != "" || s.Target != "kubernetes runners deployment default/runners" {
		t.Fatalf("three queued: %+v", s)
	}
	got, err := deps.Get(ctx, "runners", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *got.Spec.Replicas != 3 || got.Spec.Template.Spec.Containers[0].Image != "ghcr.io/actions/actions-runner:2.321.0" {
		t.Fatalf("want replicas 3 and the template kept: %d %s", *got.Spec.Replicas, got.Spec.Template.Spec.Containers[0].Image)
	}
	owners := map[string]string{}
	for _, m := range got.ManagedFields {
		owners[m.Manager] += string(m.FieldsV1.Raw)
	}
	if !strings.Contains(owners["pave"], "replicas") || strings.Contains(owners["pave"], "template") || !strings.Contains(owners["kubectl"], "template") {
		t.Fatalf("field ownership: %v", owners)
	}

	p.Spec.Target.Kubernetes.Deployment = "default/missing"
	if _, err := NewKubernetesTarget(p, c.Clients.Dynamic).Scale(ctx, 1); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing deployment: want an error saying so, got %v", err)
	}
	if _, err := deps.Get(ctx, "missing", metav1.GetOptions{}); err == nil {
		t.Fatal("Scale created the missing deployment")
	}

	c.Stop()
	for i, id := range []string{"d", "e"} {
		deliveryIn(t, h, id, "queued", int64(10+i), "acme/app")
	}
	ctl.Reconcile(ctx)
	if s := ctl.Status()[0]; s.TargetError == "" || s.RetryAt == "" || s.Runners != 3 {
		t.Fatalf("unreachable API server: want the error, a retry time and the last count kept: %+v", s)
	}
}
