package kubetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/pave-platform/pave/internal/kube"
)

// fatalTB records what a helper fails with; like testing.T, Fatal ends
// the goroutine, so run the helper through fails.
type fatalTB struct {
	testing.TB
	failed string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatal(args ...any) {
	f.failed = fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fatalTB) Fatalf(format string, args ...any) { f.Fatal(fmt.Sprintf(format, args...)) }

// fails runs fn with a fatalTB and returns what it failed with ("" if it
// did not).
func fails(t *testing.T, fn func(testing.TB)) string {
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f.failed
}

func TestBinariesMissingSaysHowToBuild(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("KUBEBUILDER_ASSETS", empty)
	failed := fails(t, func(tb testing.TB) { Binaries(tb) })
	if !strings.Contains(failed, "kube-apiserver not built: run scripts/kube-apiserver.sh (or scripts/deps.sh)") || !strings.Contains(failed, empty) {
		t.Fatalf("Binaries with an empty $KUBEBUILDER_ASSETS failed with %q; want the fix and the directory", failed)
	}
}

func TestBinariesFallsBackToTheCache(t *testing.T) {
	tools := t.TempDir()
	dir := filepath.Join(tools, "k8s", Version)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"kube-apiserver", "etcd"} {
		if err := os.WriteFile(filepath.Join(dir, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("KUBEBUILDER_ASSETS", "")
	t.Setenv("PAVE_TOOLS", tools)
	var got string
	if failed := fails(t, func(tb testing.TB) { got = Binaries(tb) }); got != dir || failed != "" {
		t.Fatalf("Binaries() = %q (failed: %q), want the cache %s", got, failed, dir)
	}
}

func TestStartNRefusesBadNames(t *testing.T) {
	for _, names := range [][]string{{"seoul", "seoul"}, {""}, {"Seoul"}, {"seoul: {}"}} {
		if failed := fails(t, func(tb testing.TB) { StartN(tb, names...) }); !strings.Contains(failed, "distinct DNS labels") {
			t.Errorf("StartN(%q) failed with %q, want a refusal of the names", names, failed)
		}
	}
}

var (
	deployments     = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	virtualServices = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	httpRoutes      = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}
)

// TestClusters checks the harness against two real API servers at once.
// The subtests share the clusters (each start costs seconds) and run in
// order: the last one stops a cluster.
func TestClusters(t *testing.T) {
	cs := StartN(t, "seoul", "busan")
	seoul, busan := cs[0], cs[1]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("independent", func(t *testing.T) {
		if seoul.Config.Host == busan.Config.Host {
			t.Fatalf("both clusters serve at %s", seoul.Config.Host)
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "only-in-seoul", Namespace: "default"}}
		if _, err := seoul.Clients.Kube.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err := busan.Clients.Kube.CoreV1().ConfigMaps("default").Get(ctx, "only-in-seoul", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			t.Fatalf("a ConfigMap created in seoul, read from busan: err = %v, want NotFound", err)
		}
	})

	t.Run("istio and gateway api schemas validate", func(t *testing.T) {
		vs := func(weight any) *unstructured.Unstructured {
			return &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
				"metadata": map[string]any{"name": "shop", "namespace": "default"},
				"spec": map[string]any{"hosts": []any{"shop"}, "http": []any{map[string]any{"name": "primary",
					"route": []any{map[string]any{"destination": map[string]any{"host": "shop", "subset": "v1"}, "weight": weight}}}}},
			}}
		}
		route := func(weight int64) *unstructured.Unstructured {
			return &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
				"metadata": map[string]any{"name": "shop", "namespace": "default"},
				"spec": map[string]any{"rules": []any{map[string]any{"backendRefs": []any{
					map[string]any{"name": "shop-v1", "port": int64(80), "weight": weight}}}}},
			}}
		}
		vsClient := seoul.Clients.Dynamic.Resource(virtualServices).Namespace("default")
		routeClient := seoul.Clients.Dynamic.Resource(httpRoutes).Namespace("default")

		_, err := vsClient.Create(ctx, vs("ninety"), metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "weight") {
			t.Errorf("VirtualService with weight \"ninety\": err = %v, want Invalid naming weight", err)
		}
		_, err = routeClient.Create(ctx, route(-1), metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "weight") {
			t.Errorf("HTTPRoute with weight -1: err = %v, want Invalid naming weight", err)
		}
		// The same objects with good weights are accepted: the refusals
		// above were about the weight, not about missing CRDs.
		if _, err := vsClient.Create(ctx, vs(int64(90)), metav1.CreateOptions{}); err != nil {
			t.Errorf("VirtualService with weight 90: %v", err)
		}
		if _, err := routeClient.Create(ctx, route(90), metav1.CreateOptions{}); err != nil {
			t.Errorf("HTTPRoute with weight 90: %v", err)
		}
		// Typed clients reach the CRDs too.
		if _, err := seoul.Clients.Istio.NetworkingV1().VirtualServices("default").Get(ctx, "shop", metav1.GetOptions{}); err != nil {
			t.Errorf("typed Istio client: %v", err)
		}
		if _, err := busan.Clients.Gateway.GatewayV1().HTTPRoutes("default").List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("typed Gateway API client on busan: %v", err)
		}
	})

	t.Run("kubeconfig reaches the cluster", func(t *testing.T) {
		for _, c := range cs {
			cfg, err := kube.Load(c.Kubeconfig, "") // its current context
			if err != nil {
				t.Fatal(err)
			}
			k, err := kube.New(c.Name, cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = k.Kube.CoreV1().ConfigMaps("default").Get(ctx, "only-in-seoul", metav1.GetOptions{})
			if found := err == nil; found != (c == seoul) {
				t.Errorf("through %s's kubeconfig the seoul-only ConfigMap: err = %v", c.Name, err)
			}
		}
	})

	t.Run("PlayDeployments", func(t *testing.T) {
		var mu sync.Mutex
		verdicts := map[string]Verdict{"good": Ready, "crashing": Unready, "stuck": Failed, "ignored": Untouched}
		for name := range verdicts {
			if _, err := seoul.Clients.Kube.AppsV1().Deployments("default").Create(ctx, deployment(name, 3), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		pctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			seoul.PlayDeployments(pctx, func(d *appsv1.Deployment) Verdict {
				mu.Lock()
				defer mu.Unlock()
				return verdicts[d.Name]
			})
		}()
		defer func() { stop(); <-done }()

		good := waitDeployment(ctx, t, seoul, "good", func(d *appsv1.Deployment) bool { return d.Status.AvailableReplicas == 3 })
		if c := condition(good, appsv1.DeploymentAvailable); c.Status != corev1.ConditionTrue {
			t.Errorf("good: Available = %+v, want True", c)
		}
		if c := condition(good, appsv1.DeploymentProgressing); c.Status != corev1.ConditionTrue || c.Reason != "NewReplicaSetAvailable" {
			t.Errorf("good: Progressing = %+v, want True NewReplicaSetAvailable", c)
		}
		if s := good.Status; s.ObservedGeneration != good.Generation || s.Replicas != 3 || s.UpdatedReplicas != 3 || s.ReadyReplicas != 3 {
			t.Errorf("good: status %+v, want all 3 replicas at generation %d", s, good.Generation)
		}

		stuck := waitDeployment(ctx, t, seoul, "stuck", func(d *appsv1.Deployment) bool {
			return condition(d, appsv1.DeploymentProgressing).Reason == "ProgressDeadlineExceeded"
		})
		if c := condition(stuck, appsv1.DeploymentProgressing); c.Status != corev1.ConditionFalse || stuck.Status.AvailableReplicas != 0 {
			t.Errorf("stuck: Progressing %+v, %d available; want False and none", c, stuck.Status.AvailableReplicas)
		}
		crashing := waitDeployment(ctx, t, seoul, "crashing", func(d *appsv1.Deployment) bool { return d.Status.ObservedGeneration == d.Generation })
		if s := crashing.Status; s.AvailableReplicas != 0 || s.UnavailableReplicas != 3 || condition(crashing, appsv1.DeploymentAvailable).Status != corev1.ConditionFalse {
			t.Errorf("crashing: status %+v, want 3 unavailable, Available=False", s)
		}

		// A new generation (scaled to 5) is observed again, and a verdict
		// changed mid-test is played: the crashing deployment recovers.
		mu.Lock()
		verdicts["crashing"] = Ready
		mu.Unlock()
		scaled := deployment("good", 5)
		scaled.ResourceVersion = good.ResourceVersion
		if _, err := seoul.Clients.Kube.AppsV1().Deployments("default").Update(ctx, scaled, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitDeployment(ctx, t, seoul, "good", func(d *appsv1.Deployment) bool {
			return d.Status.ObservedGeneration == d.Generation && d.Status.AvailableReplicas == 5
		})
		waitDeployment(ctx, t, seoul, "crashing", func(d *appsv1.Deployment) bool { return d.Status.AvailableReplicas == 3 })

		ignored, err := seoul.Clients.Kube.AppsV1().Deployments("default").Get(ctx, "ignored", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ignored.Status.ObservedGeneration != 0 || len(ignored.Status.Conditions) != 0 {
			t.Errorf("ignored: status %+v, want none written", ignored.Status)
		}
	})

	t.Run("Stop makes the cluster unreachable", func(t *testing.T) {
		busan.Stop()
		busan.Stop() // idempotent
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		defer scancel()
		if _, err := busan.Clients.Dynamic.Resource(deployments).Namespace("default").List(sctx, metav1.ListOptions{}); err == nil {
			t.Fatal("a stopped cluster still answers")
		}
		if _, err := seoul.Clients.Kube.CoreV1().ConfigMaps("default").Get(ctx, "only-in-seoul", metav1.GetOptions{}); err != nil {
			t.Fatalf("stopping busan broke seoul: %v", err)
		}
	})
}

func deployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: name + ":v1"}}},
			},
		},
	}
}

func waitDeployment(ctx context.Context, t *testing.T, c *Cluster, name string, ok func(*appsv1.Deployment) bool) *appsv1.Deployment {
	t.Helper()
	var last *appsv1.Deployment
	for {
		d, err := c.Clients.Kube.AppsV1().Deployments("default").Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			if last = d; ok(d) {
				return d
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("deployment %s never reached the wanted status; last: %+v (err %v)", name, last, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func condition(d *appsv1.Deployment, typ appsv1.DeploymentConditionType) appsv1.DeploymentCondition {
	for _, c := range d.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return appsv1.DeploymentCondition{}
}
