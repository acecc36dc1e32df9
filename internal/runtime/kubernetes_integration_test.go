package runtime_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/rest"

	"github.com/pave-platform/pave/internal/kube"
	"github.com/pave-platform/pave/internal/kube/kubetest"
	"github.com/pave-platform/pave/internal/runtime"
)

// TestKubernetesTargetOnARealAPIServer runs the target against a real
// kube-apiserver: server-side apply keeps what other field managers own
// and takes back what Pave owns, a repeated deploy writes nothing,
// readiness and rollout failures follow the Deployment's status, Remove
// cleans up, and refused credentials and a lost API server are named.
func TestKubernetesTargetOnARealAPIServer(t *testing.T) {
	c := kubetest.Start(t, "seoul")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	k, err := runtime.NewKubernetes(runtime.KubernetesOptions{Cluster: c.Clients, Datacenter: "kr-1"})
	if err != nil {
		t.Fatal(err)
	}
	deps := c.Clients.Kube.AppsV1().Deployments("default")
	svcs := c.Clients.Kube.CoreV1().Services("default")
	get := func(name string) *appsv1.Deployment {
		t.Helper()
		d, err := deps.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	d := runtime.Deployment{Service: "orders", Version: "v2", Image: "registry.local/orders:v2", Replicas: 2}
	if err := k.Deploy(ctx, d); err != nil {
		t.Fatal(err)
	}
	st, err := k.Status(ctx, "orders", "v2")
	if err != nil || st.Ready != 0 || st.Replicas != 2 || st.Artifact != d.Image {
		t.Fatalf("before any controller wrote status: %+v %v; want 0 of 2 ready", st, err)
	}

	// The team applies fields of its own with its own field manager: an
	// annotation on the Deployment and on its pods, a label and the
	// session affinity of the shared Service.
	team := metav1.ApplyOptions{FieldManager: "team"}
	if _, err := deps.Apply(ctx, appsv1ac.Deployment("orders-v2", "default").
		WithAnnotations(map[string]string{"team.example/owner": "payments"}).
		WithSpec(appsv1ac.DeploymentSpec().WithTemplate(corev1ac.PodTemplateSpec().
			WithAnnotations(map[string]string{"prometheus.io/scrape": "true"}))), team); err != nil {
		t.Fatal(err)
	}
	if _, err := svcs.Apply(ctx, corev1ac.Service("orders", "default").WithLabels(map[string]string{"team.example/tier": "gold"}).
		WithSpec(corev1ac.ServiceSpec().WithSessionAffinity("ClientIP")), team); err != nil {
		t.Fatal(err)
	}

	before := get("orders-v2")
	if err := k.Deploy(ctx, d); err != nil {
		t.Fatal(err)
	}
	after := get("orders-v2")
	if after.Generation != before.Generation || after.ResourceVersion != before.ResourceVersion {
		t.Errorf("a repeated deploy wrote the Deployment: generation %d → %d, resourceVersion %s → %s",
			before.Generation, after.Generation, before.ResourceVersion, after.ResourceVersion)
	}
	teamKept := func(when string) {
		t.Helper()
		dep := get("orders-v2")
		if dep.Annotations["team.example/owner"] != "payments" || dep.Spec.Template.Annotations["prometheus.io/scrape"] != "true" {
			t.Errorf("%s: the team's annotations are gone: %v, pods %v", when, dep.Annotations, dep.Spec.Template.Annotations)
		}
		svc, err := svcs.Get(ctx, "orders", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if svc.Spec.SessionAffinity != "ClientIP" || svc.Labels["team.example/tier"] != "gold" {
			t.Errorf("%s: the team's Service fields are gone: sessionAffinity %q, labels %v", when, svc.Spec.SessionAffinity, svc.Labels)
		}
		if svc.Spec.Selector["app.kubernetes.io/name"] != "orders" || len(svc.Spec.Selector) != 1 {
			t.Errorf("%s: shared Service selects %v", when, svc.Spec.Selector)
		}
		managers := map[string]bool{}
		for _, m := range dep.ManagedFields {
			managers[m.Manager] = true
		}
		if !managers["pave"] || !managers["team"] {
			t.Errorf("%s: field managers %v, want pave and team", when, managers)
		}
	}
	teamKept("after a repeated deploy")

	// A field Pave owns, changed by someone else (kubectl scale), is taken
	// back on the next deploy; a changed spec rolls and keeps the team's.
	if _, err := deps.Apply(ctx, appsv1ac.Deployment("orders-v2", "default").
		WithSpec(appsv1ac.DeploymentSpec().WithReplicas(7)), metav1.ApplyOptions{FieldManager: "kubectl-scale", Force: true}); err != nil {
		t.Fatal(err)
	}
	d.Env = map[string]string{"FEATURE": "on"}
	if err := k.Deploy(ctx, d); err != nil {
		t.Fatal(err)
	}
	dep := get("orders-v2")
	if *dep.Spec.Replicas != 2 {
		t.Errorf("replicas %d after Pave's deploy, want Pave's 2", *dep.Spec.Replicas)
	}
	if dep.Generation == after.Generation {
		t.Error("a deploy with new env did not change the pod template")
	}
	teamKept("after a deploy with new env")

	// The controller, played: v2 becomes ready; v3 times out.
	var failV3 atomic.Bool
	failV3.Store(true)
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	go c.PlayDeployments(pctx, func(d *appsv1.Deployment) kubetest.Verdict {
		if d.Name == "orders-v3" && failV3.Load() {
			return kubetest.Failed
		}
		return kubetest.Ready
	})
	waitFor(t, ctx, "orders v2 ready", func() (bool, error) {
		st, err := k.Status(ctx, "orders", "v2")
		return st.Ready == 2, err
	})
	if err := k.Deploy(ctx, runtime.Deployment{Service: "orders", Version: "v3", Image: "registry.local/orders:v3", Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	var failure error
	waitFor(t, ctx, "orders v3's rollout failure", func() (bool, error) {
		_, failure = k.Status(ctx, "orders", "v3")
		if failure != nil && !errors.Is(failure, runtime.ErrRolloutFailed) {
			return false, failure
		}
		return failure != nil, nil
	})
	if want := "cluster seoul: deployment default/orders-v3: rollout failed: "; !strings.Contains(failure.Error(), want) ||
		!strings.Contains(failure.Error(), "timed out progressing") {
		t.Errorf("rollout failure %q, want %q and the condition's message", failure, want)
	}
	list, err := k.List(ctx)
	if err != nil || len(list) != 2 || list[0].Version != "v2" || list[0].Ready != 2 || list[1].Version != "v3" || list[1].Ready != 0 {
		t.Errorf("list %+v %v, want v2 ready and v3 not", list, err)
	}
	stop()

	// Remove v3: its Deployment and Service go; the shared Service, with
	// v2 still running and the team's fields on it, stays.
	if err := k.Remove(ctx, "orders", "v3"); err != nil {
		t.Fatal(err)
	}
	if _, err := deps.Get(ctx, "orders-v3", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("orders-v3 Deployment after Remove: %v", err)
	}
	if _, err := svcs.Get(ctx, "orders-v3", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("orders-v3 Service after Remove: %v", err)
	}
	if err := k.Remove(ctx, "orders", "v3"); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("second Remove: %v, want ErrNotFound", err)
	}
	if err := k.Remove(ctx, "orders", "v2"); err != nil {
		t.Fatal(err)
	}
	if _, err := svcs.Get(ctx, "orders", metav1.GetOptions{}); err != nil {
		t.Errorf("the shared Service the team also manages: %v", err)
	}
	// A shared Service only Pave wrote goes with the last version.
	if err := k.Deploy(ctx, runtime.Deployment{Service: "cart", Version: "v1", Image: "registry.local/cart:v1", Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	if err := k.Remove(ctx, "cart", "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := svcs.Get(ctx, "cart", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the shared Service cart, Pave's alone, after its last version went: %v", err)
	}

	// A namespace that does not exist is named as such.
	elsewhere, err := runtime.NewKubernetes(runtime.KubernetesOptions{Cluster: c.Clients, Namespace: "missing"})
	if err != nil {
		t.Fatal(err)
	}
	err = elsewhere.Deploy(ctx, runtime.Deployment{Service: "orders", Version: "v2", Image: "img", Replicas: 1})
	if err == nil || !strings.Contains(err.Error(), "cluster seoul: apply deployment missing/orders-v2: namespace missing does not exist") {
		t.Errorf("deploy into a missing namespace: %v", err)
	}

	// Credentials the API server refuses.
	bad := rest.AnonymousClientConfig(c.Config)
	bad.BearerToken = "not-a-token"
	badClients, err := kube.New("seoul", bad)
	if err != nil {
		t.Fatal(err)
	}
	intruder, err := runtime.NewKubernetes(runtime.KubernetesOptions{Cluster: badClients})
	if err != nil {
		t.Fatal(err)
	}
	_, err = intruder.Status(ctx, "orders", "v2")
	if err == nil || !strings.Contains(err.Error(), "cluster seoul: not authorised to read deployment default/orders-v2: check the kubeconfig's user") {
		t.Errorf("with a bad token: %v", err)
	}

	if err := k.Deploy(ctx, d); err != nil {
		t.Fatal(err)
	}
	c.Stop()
	sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
	defer scancel()
	_, err = k.Status(sctx, "orders", "v2")
	if err == nil || !strings.Contains(err.Error(), "cluster seoul unreachable: read deployment default/orders-v2") {
		t.Fatalf("with the API server gone: %v", err)
	}
}

// waitFor polls cond until it holds, fails or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() (bool, error)) {
	t.Helper()
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within the test's deadline", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
