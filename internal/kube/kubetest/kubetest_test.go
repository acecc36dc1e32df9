package kubetest

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/pave-platform/pave/internal/kube"
)

// TestTwoRealClusters checks the harness itself: two independent API
// servers, the real Istio and Gateway API schemas, the stand-in for the
// Deployment controller, and a cluster that goes away.
func TestTwoRealClusters(t *testing.T) {
	cs := StartN(t, "seoul", "busan")
	seoul, busan := cs[0], cs[1]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	one := int32(1)
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "shop-v1", Namespace: "default"}, Spec: appsv1.DeploymentSpec{Replicas: &one,
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "shop"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "shop:v1"}}}}}}
	if _, err := seoul.Clients.Kube.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := busan.Clients.Kube.AppsV1().Deployments("default").Get(ctx, "shop-v1", metav1.GetOptions{}); err == nil {
		t.Fatal("a deployment created in seoul shows in busan: the clusters are not independent")
	}

	// The real schemas validate: a string weight in a VirtualService and a
	// negative HTTPRoute weight are refused by the API server.
	vs := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
		"metadata": map[string]any{"name": "shop", "namespace": "default"},
		"spec": map[string]any{"hosts": []any{"shop"}, "http": []any{map[string]any{"name": "primary",
			"route": []any{map[string]any{"destination": map[string]any{"host": "shop"}, "weight": "ninety"}}}}}}}
	_, err := seoul.Clients.Dynamic.Resource(schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}).
		Namespace("default").Create(ctx, vs, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "weight") {
		t.Fatalf("a string weight was accepted: %v", err)
	}
	hr := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
		"metadata": map[string]any{"name": "shop", "namespace": "default"},
		"spec":     map[string]any{"rules": []any{map[string]any{"backendRefs": []any{map[string]any{"name": "shop-v1", "port": 80, "weight": -1}}}}}}}
	_, err = seoul.Clients.Dynamic.Resource(schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}).
		Namespace("default").Create(ctx, hr, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "weight") {
		t.Fatalf("a negative weight was accepted: %v", err)
	}

	pctx, stop := context.WithCancel(ctx)
	go seoul.PlayDeployments(pctx, nil)
	for {
		d, err := seoul.Clients.Kube.AppsV1().Deployments("default").Get(ctx, "shop-v1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if d.Status.AvailableReplicas == 1 && d.Status.ObservedGeneration == d.Generation {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the stand-in controller never wrote status")
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()

	// The kubeconfig file reaches the same cluster.
	cfg, err := kube.Load(seoul.Kubeconfig, "seoul")
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kube.New("seoul", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kc.Kube.AppsV1().Deployments("default").Get(ctx, "shop-v1", metav1.GetOptions{}); err != nil {
		t.Fatalf("through the kubeconfig: %v", err)
	}

	busan.Stop()
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	defer scancel()
	if _, err := busan.Clients.Kube.AppsV1().Deployments("default").List(sctx, metav1.ListOptions{}); err == nil {
		t.Fatal("a stopped cluster still answers")
	}
}
