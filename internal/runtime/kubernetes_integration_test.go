package runtime_test

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"github.com/pave-platform/pave/internal/kube/kubetest"
	"github.com/pave-platform/pave/internal/runtime"
)

// TestKubernetesTargetOnARealAPIServer: server-side apply keeps what other
// field managers own, a repeated deploy changes nothing, readiness follows
// the Deployment's status, and a lost API server is named in the error.
func TestKubernetesTargetOnARealAPIServer(t *testing.T) {
	c := kubetest.Start(t, "seoul")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	k, err := runtime.NewKubernetes(runtime.KubernetesOptions{Cluster: c.Clients, Datacenter: "kr-1"})
	if err != nil {
		t.Fatal(err)
	}
	d := runtime.Deployment{Service: "orders", Version: "v2", Image: "registry.local/orders:v2", Replicas: 2}
	if err := k.Deploy(ctx, d); err != nil {
		t.Fatal(err)
	}
	st, err := k.Status(ctx, "orders", "v2")
	if err != nil || st.Ready != 0 {
		t.Fatalf("ready before any controller wrote status: %+v %v", st, err)
	}

	// The team applies its own fields with its own field manager.
	team := metav1.ApplyOptions{FieldManager: "team"}
	if _, err := c.Clients.Kube.AppsV1().Deployments("default").Apply(ctx,
		appsv1ac.Deployment("orders-v2", "default").WithAnnotations(map[string]string{"team.example/owner": "payments"}), team); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Clients.Kube.CoreV1().Services("default").Apply(ctx,
		corev1ac.Service("orders", "default").WithSpec(corev1ac.ServiceSpec().WithSessionAffinity("ClientIP")), team); err != nil {
		t.Fatal(err)
	}
	before, _ := c.Clients.Kube.AppsV1().Deployments("default").Get(ctx, "orders-v2", metav1.GetOptions{})
	if err := k.Deploy(ctx, d); err != nil {
		t.Fatal(err)
	}
	after, _ := c.Clients.Kube.AppsV1().Deployments("default").Get(ctx, "orders-v2", metav1.GetOptions{})
	if after.Generation != before.Generation {
		t.Errorf("a repeated deploy changed the spec: generation %d → %d", before.Generation, after.Generation)
	}
	if after.Annotations["team.example/owner"] != "payments" {
		t.Error("Pave's apply removed the team's annotation")
	}
	svc, _ := c.Clients.Kube.CoreV1().Services("default").Get(ctx, "orders", metav1.GetOptions{})
	if svc.Spec.SessionAffinity != "ClientIP" {
		t.Errorf("Pave's apply reset the team's sessionAffinity to %q", svc.Spec.SessionAffinity)
	}
	managers := map[string]bool{}
	for _, m := range after.ManagedFields {
		managers[m.Manager] = true
	}
	if !managers["pave"] || !managers["team"] {
		t.Errorf("field managers %v, want pave and team", managers)
	}

	pctx, stop := context.WithCancel(ctx)
	defer stop()
	go c.PlayDeployments(pctx, func(*appsv1.Deployment) kubetest.Verdict { return kubetest.Ready })
	for {
		st, err := k.Status(ctx, "orders", "v2")
		if err != nil {
			t.Fatal(err)
		}
		if st.Ready == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("never ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()

	c.Stop()
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	_, err = k.Status(sctx, "orders", "v2")
	if err == nil || !strings.Contains(err.Error(), "cluster seoul") || !strings.Contains(err.Error(), "deployment default/orders-v2") {
		t.Fatalf("with the API server gone: %v", err)
	}
}
