package runtime

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

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

func TestNewKubernetesRefusesMissingClients(t *testing.T) {
	if _, err := NewKubernetes(KubernetesOptions{}); err == nil || !strings.Contains(err.Error(), "no cluster clients") {
		t.Errorf("no cluster: %v", err)
	}
	if _, err := NewKubernetes(KubernetesOptions{Cluster: &kube.Cluster{Kube: k8sfake.NewClientset()}}); err == nil || !strings.Contains(err.Error(), "no name") {
		t.Errorf("unnamed cluster: %v", err)
	}
	k, err := NewKubernetes(KubernetesOptions{Cluster: &kube.Cluster{Name: "seoul", Kube: k8sfake.NewClientset()}})
	if err != nil || k.o.Namespace != "default" {
		t.Errorf("namespace %q, %v; want default", k.o.Namespace, err)
	}
}

func TestKubernetesDeployBuildsTheObjects(t *testing.T) {
	k, cs := newFakeKubernetes(t)
	ctx := context.Background()
	d := Deployment{Service: "orders", Version: "v2", Image: "registry.local/orders:v2", Replicas: 3,
		Env: map[string]string{"ZED": "last", "FLAG": "on", "ALPHA": "1"}}
	if err := k.Deploy(ctx, d); err != nil {
		t.Fatal(err)
	}
	dep, err := cs.AppsV1().Deployments("shop").Get(ctx, "orders-v2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app.kubernetes.io/name": "orders", "version": "v2", "app.kubernetes.io/managed-by": "pave"}
	if !reflect.DeepEqual(dep.Labels, labels) || !reflect.DeepEqual(dep.Spec.Template.Labels, labels) {
		t.Errorf("labels %v, pod labels %v; want %v", dep.Labels, dep.Spec.Template.Labels, labels)
	}
	// The selector is immutable: only what names the version, never the
	// managed-by label, so the team may relabel without orphaning pods.
	if sel := map[string]string{"app.kubernetes.io/name": "orders", "version": "v2"}; !reflect.DeepEqual(dep.Spec.Selector.MatchLabels, sel) {
		t.Errorf("selector %v, want %v", dep.Spec.Selector.MatchLabels, sel)
	}
	if *dep.Spec.Replicas != 3 {
		t.Errorf("replicas %d, want 3", *dep.Spec.Replicas)
	}
	if len(dep.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("containers %+v, want one", dep.Spec.Template.Spec.Containers)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if c.Name != "app" || c.Image != d.Image {
		t.Errorf("container %q image %q", c.Name, c.Image)
	}
	var env []string
	for _, e := range c.Env {
		env = append(env, e.Name+"="+e.Value)
	}
	wantEnv := []string{"PORT=8080", "PAVE_SERVICE=orders", "PAVE_VERSION=v2", "PAVE_CLUSTER=seoul", "PAVE_DATACENTER=kr-1", "ALPHA=1", "FLAG=on", "ZED=last"}
	if !reflect.DeepEqual(env, wantEnv) {
		t.Errorf("env %v\nwant %v", env, wantEnv)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != 8080 {
		t.Errorf("ports %+v, want http 8080", c.Ports)
	}
	probe := func(name string, p *corev1.Probe, path string) {
		t.Helper()
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "http" {
			t.Errorf("%s probe %+v, want GET %s on port http", name, p, path)
		}
	}
	probe("readiness", c.ReadinessProbe, "/readyz")
	probe("liveness", c.LivenessProbe, "/healthz")
	probe("startup", c.StartupProbe, "/healthz")

	for name, sel := range map[string]map[string]string{
		"orders-v2": {"app.kubernetes.io/name": "orders", "version": "v2"},
		"orders":    {"app.kubernetes.io/name": "orders"},
	} {
		svc, err := cs.CoreV1().Services("shop").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("service %s: %v", name, err)
		}
		if !reflect.DeepEqual(svc.Spec.Selector, sel) {
			t.Errorf("service %s selects %v, want %v", name, svc.Spec.Selector, sel)
		}
		if p := svc.Spec.Ports; len(p) != 1 || p[0].Name != "http" || p[0].Port != 80 || p[0].TargetPort.String() != "http" {
			t.Errorf("service %s ports %+v, want http 80 → http", name, p)
		}
		// The shared Service is usually the team's too: Pave does not
		// claim it with its label.
		if got, want := svc.Labels["app.kubernetes.io/managed-by"], map[string]string{"orders-v2": "pave", "orders": ""}[name]; got != want {
			t.Errorf("service %s managed-by %q, want %q", name, got, want)
		}
	}

	d.ReadinessPath = "/ready/deep"
	d.Version = "v3"
	if err := k.Deploy(ctx, d); err != nil {
		t.Fatal(err)
	}
	dep, _ = cs.AppsV1().Deployments("shop").Get(ctx, "orders-v3", metav1.GetOptions{})
	if p := dep.Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Path; p != "/ready/deep" {
		t.Errorf("readiness path %q, want the deployment's /ready/deep", p)
	}
}

func TestKubernetesDeployRefusesWhatIsNotAnImage(t *testing.T) {
	k, cs := newFakeKubernetes(t)
	for _, c := range []struct {
		name  string
		d     Deployment
		field string
		say   string
	}{
		{"binary", Deployment{Service: "orders", Version: "v3", Binary: "/bin/true", Replicas: 1}, "image", "pass --image REF"},
		{"source", Deployment{Service: "orders", Version: "v3", Source: "/src/orders", Replicas: 1}, "image", "pass --image REF"},
		{"space", Deployment{Service: "orders", Version: "v3", Image: "registry/orders v3", Replicas: 1}, "image", "white space"},
		{"url", Deployment{Service: "orders", Version: "v3", Image: "https://registry/orders:v3", Replicas: 1}, "image", "is a URL"},
		{"reserved env", Deployment{Service: "orders", Version: "v3", Image: "img", Replicas: 1, Env: map[string]string{"PAVE_CLUSTER": "x"}}, "env.PAVE_CLUSTER", "cannot be overridden"},
		{"bad version", Deployment{Service: "orders", Version: "V3", Image: "img", Replicas: 1}, "version", "lower-case"},
	} {
		err := k.Deploy(context.Background(), c.d)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.say) {
			t.Errorf("%s: %v, want a field error on %s saying %q", c.name, err, c.field, c.say)
		}
	}
	if acts := cs.Actions(); len(acts) != 0 {
		t.Errorf("refused deployments reached the API server: %v", acts)
	}
}

// deploymentWith stores a Deployment of orders-v2 as the controller left it.
func deploymentWith(t *testing.T, cs *k8sfake.Clientset, replicas int32, generation int64, st appsv1.DeploymentStatus) {
	t.Helper()
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "orders-v2", Namespace: "shop", Generation: generation,
			Labels:            map[string]string{LabelName: "orders", LabelVersion: "v2", LabelManagedBy: "pave"},
			CreationTimestamp: metav1.NewTime(time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC))},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "sidecar", Image: "mesh:1"}, {Name: "app", Image: "registry.local/orders:v2"}}}}},
		Status: st,
	}
	ctx := context.Background()
	_ = cs.AppsV1().Deployments("shop").Delete(ctx, d.Name, metav1.DeleteOptions{})
	if _, err := cs.AppsV1().Deployments("shop").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestKubernetesStatusFollowsTheDeploymentController(t *testing.T) {
	timedOut := appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
		Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "orders-v2-7d9f" has timed out progressing.`}
	for _, c := range []struct {
		name       string
		generation int64
		st         appsv1.DeploymentStatus
		ready      int
		failed     bool
	}{
		{"no status yet", 1, appsv1.DeploymentStatus{}, 0, false},
		{"stale observedGeneration", 2, appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 2}, 0, false},
		{"one of two available", 2, appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 1}, 1, false},
		{"updated but not available", 2, appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: 2}, 0, false},
		{"old replicas count as available", 2, appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 2, AvailableReplicas: 2}, 1, false},
		{"all ready", 2, appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 2}, 2, false},
		{"ahead of generation", 2, appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 2}, 2, false},
		{"progress deadline exceeded", 2, appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: 2, Conditions: []appsv1.DeploymentCondition{timedOut}}, 0, true},
		// A new spec restarts the deadline: the old verdict is not the
		// new rollout's until the controller has seen it.
		{"stale deadline exceeded", 3, appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: 2, Conditions: []appsv1.DeploymentCondition{timedOut}}, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			k, cs := newFakeKubernetes(t)
			deploymentWith(t, cs, 2, c.generation, c.st)
			st, err := k.Status(context.Background(), "orders", "v2")
			if c.failed {
				if !errors.Is(err, ErrRolloutFailed) || !strings.Contains(err.Error(),
					`cluster seoul: deployment shop/orders-v2: rollout failed: ReplicaSet "orders-v2-7d9f" has timed out progressing.`) {
					t.Fatalf("err %v, want the rollout failure with the condition's message", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if st.Ready != c.ready || st.Replicas != 2 {
				t.Errorf("ready %d of %d, want %d of 2", st.Ready, st.Replicas, c.ready)
			}
			if st.Cluster != "seoul" || st.Service != "orders" || st.Version != "v2" || st.Artifact != "registry.local/orders:v2" ||
				!st.Deployed.Equal(time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)) {
				t.Errorf("status %+v", st)
			}
		})
	}
	k, _ := newFakeKubernetes(t)
	_, err := k.Status(context.Background(), "orders", "v9")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "cluster seoul: deployment shop/orders-v9") {
		t.Fatalf("missing version: %v", err)
	}
}

func TestKubernetesListReportsPaveVersionsSorted(t *testing.T) {
	k, cs := newFakeKubernetes(t)
	ctx := context.Background()
	for _, d := range []Deployment{
		{Service: "orders", Version: "v2", Image: "img:2", Replicas: 1},
		{Service: "cart", Version: "v1", Image: "cart:1", Replicas: 2},
		{Service: "orders", Version: "v1", Image: "img:1", Replicas: 1},
	} {
		if err := k.Deploy(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	// The team's own Deployment (the scaffold's stable track) is not Pave's.
	team := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "shop", Labels: map[string]string{LabelName: "orders"}}}
	if _, err := cs.AppsV1().Deployments("shop").Create(ctx, team, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	list, err := k.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, st := range list {
		got = append(got, fmt.Sprintf("%s/%s %s %d@%s", st.Service, st.Version, st.Artifact, st.Replicas, st.Cluster))
	}
	want := []string{"cart/v1 cart:1 2@seoul", "orders/v1 img:1 1@seoul", "orders/v2 img:2 1@seoul"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("list %v\nwant %v", got, want)
	}
}

func TestKubernetesRemoveKeepsWhatOthersStillUse(t *testing.T) {
	k, cs := newFakeKubernetes(t)
	ctx := context.Background()
	for _, v := range []string{"v1", "v2"} {
		if err := k.Deploy(ctx, Deployment{Service: "orders", Version: v, Image: "img:" + v, Replicas: 1}); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(kind, name string) bool {
		t.Helper()
		var err error
		if kind == "deployment" {
			_, err = cs.AppsV1().Deployments("shop").Get(ctx, name, metav1.GetOptions{})
		} else {
			_, err = cs.CoreV1().Services("shop").Get(ctx, name, metav1.GetOptions{})
		}
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}
	if err := k.Remove(ctx, "orders", "v1"); err != nil {
		t.Fatal(err)
	}
	if exists("deployment", "orders-v1") || exists("service", "orders-v1") {
		t.Error("v1's Deployment or Service outlived its removal")
	}
	if !exists("service", "orders") || !exists("deployment", "orders-v2") {
		t.Fatal("removing v1 took v2 or the shared Service with it")
	}
	if err := k.Remove(ctx, "orders", "v2"); err != nil {
		t.Fatal(err)
	}
	if exists("service", "orders") {
		t.Error("the shared Service, Pave's alone, outlived the last version")
	}
	err := k.Remove(ctx, "orders", "v2")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "cluster seoul: deployment shop/orders-v2") {
		t.Fatalf("second remove: %v, want ErrNotFound naming the cluster and deployment", err)
	}

	// The team applied the shared Service too: it stays theirs.
	if err := k.Deploy(ctx, Deployment{Service: "orders", Version: "v3", Image: "img:3", Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Services("shop").Apply(ctx, corev1ac.Service("orders", "shop").
		WithAnnotations(map[string]string{"team.example/owner": "payments"}), metav1.ApplyOptions{FieldManager: "team"}); err != nil {
		t.Fatal(err)
	}
	if err := k.Remove(ctx, "orders", "v3"); err != nil {
		t.Fatal(err)
	}
	if !exists("service", "orders") {
		t.Error("Pave deleted a shared Service the team also manages")
	}

	// The scaffold's stable Deployment, not Pave's, still selects through
	// the shared Service.
	k2, cs2 := newFakeKubernetes(t)
	if err := k2.Deploy(ctx, Deployment{Service: "cart", Version: "v1", Image: "img", Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	stable := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "cart", Namespace: "shop", Labels: map[string]string{LabelName: "cart"}}}
	if _, err := cs2.AppsV1().Deployments("shop").Create(ctx, stable, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := k2.Remove(ctx, "cart", "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := cs2.CoreV1().Services("shop").Get(ctx, "cart", metav1.GetOptions{}); err != nil {
		t.Errorf("the shared Service went while the team's Deployment still uses it: %v", err)
	}
}

// TestKubernetesErrorsNameClusterAndObject: every way the API server can
// fail names the cluster and the object and says what to check.
func TestKubernetesErrorsNameClusterAndObject(t *testing.T) {
	gr := schema.GroupResource{Group: "apps", Resource: "deployments"}
	refused := &url.Error{Op: "Get", URL: "https://10.0.0.1:6443/apis/apps/v1", Err: syscall.ECONNREFUSED}
	ops := map[string]func(*Kubernetes) error{
		"deploy": func(k *Kubernetes) error {
			return k.Deploy(context.Background(), Deployment{Service: "orders", Version: "v2", Image: "img", Replicas: 1})
		},
		"status": func(k *Kubernetes) error { _, err := k.Status(context.Background(), "orders", "v2"); return err },
		"remove": func(k *Kubernetes) error { return k.Remove(context.Background(), "orders", "v2") },
		"list":   func(k *Kubernetes) error { _, err := k.List(context.Background()); return err },
	}
	object := map[string]string{"deploy": "deployment shop/orders-v2", "status": "deployment shop/orders-v2",
		"remove": "deployment shop/orders-v2", "list": "deployments shop/*"}
	for _, c := range []struct {
		name string
		err  error
		say  []string
	}{
		{"unauthorised", apierrors.NewUnauthorized("token expired"), []string{"cluster seoul: not authorised to ", "check the kubeconfig's user"}},
		{"forbidden", apierrors.NewForbidden(gr, "orders-v2", errors.New("RBAC")), []string{"cluster seoul: not authorised to ", "check the kubeconfig's user", "RBAC"}},
		{"unreachable", refused, []string{"cluster seoul unreachable: ", "connection refused"}},
		{"other", apierrors.NewInternalError(errors.New("etcd is sad")), []string{"cluster seoul: ", "etcd is sad"}},
	} {
		for op, run := range ops {
			t.Run(c.name+"/"+op, func(t *testing.T) {
				k, cs := newFakeKubernetes(t)
				cs.PrependReactor("*", "*", func(k8stesting.Action) (bool, k8sruntime.Object, error) { return true, nil, c.err })
				err := run(k)
				if err == nil {
					t.Fatal("no error")
				}
				for _, s := range append(c.say, object[op]) {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("%v\nlacks %q", err, s)
					}
				}
				if !errors.Is(err, c.err) {
					t.Errorf("%v does not wrap the client's error", err)
				}
				if errors.Is(err, ErrNotFound) {
					t.Errorf("%v claims the version is not deployed", err)
				}
			})
		}
	}

	// Applying into a namespace that does not exist is not "not deployed".
	k, cs := newFakeKubernetes(t)
	cs.PrependReactor("patch", "deployments", func(k8stesting.Action) (bool, k8sruntime.Object, error) {
		return true, nil, apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "shop")
	})
	err := k.Deploy(context.Background(), Deployment{Service: "orders", Version: "v2", Image: "img", Replicas: 1})
	if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "cluster seoul: apply deployment shop/orders-v2: namespace shop does not exist") {
		t.Errorf("apply into a missing namespace: %v", err)
	}
}
