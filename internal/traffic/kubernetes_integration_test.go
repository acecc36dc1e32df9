package traffic

// Integration tests against real kube-apiservers (kubetest) with the
// published Istio and Gateway API CRDs: the schemas, defaulting and
// resourceVersion checks are the real ones.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	networkingv1 "istio.io/api/networking/v1"
	istioapi "istio.io/client-go/pkg/apis/networking/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	istionet "istio.io/client-go/pkg/clientset/versioned/typed/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/retry"

	"github.com/pave-platform/pave/internal/kube/kubetest"
)

var vsResource = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}

// applyIstioScaffold creates the scaffold's VirtualService and
// DestinationRule for shop as the team would (kubectl apply of deploy/base).
func applyIstioScaffold(t *testing.T, ctx context.Context, c *kubetest.Cluster) {
	t.Helper()
	vs, dr, _ := scaffoldObjects(t, "shop")
	net := c.Clients.Istio.NetworkingV1()
	if _, err := net.VirtualServices("default").Create(ctx, vs, metav1.CreateOptions{FieldManager: "team"}); err != nil {
		t.Fatalf("cluster %s: apply the scaffold's VirtualService: %v", c.Name, err)
	}
	if _, err := net.DestinationRules("default").Create(ctx, dr, metav1.CreateOptions{FieldManager: "team"}); err != nil {
		t.Fatalf("cluster %s: apply the scaffold's DestinationRule: %v", c.Name, err)
	}
}

// rawWeights reads the primary route's weights as the API server stores
// them, bypassing Pave's typed client.
func rawWeights(t *testing.T, ctx context.Context, c *kubetest.Cluster) string {
	t.Helper()
	u, err := c.Clients.Dynamic.Resource(vsResource).Namespace("default").Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	http, _, _ := unstructured.NestedSlice(u.Object, "spec", "http")
	for _, h := range http {
		h := h.(map[string]any)
		if h["name"] != PrimaryRoute {
			continue
		}
		var out []string
		for _, d := range h["route"].([]any) {
			d := d.(map[string]any)
			sub, _, _ := unstructured.NestedString(d, "destination", "subset")
			out = append(out, fmt.Sprintf("%s=%v", sub, d["weight"]))
		}
		return strings.Join(out, " ")
	}
	t.Fatal("no primary route")
	return ""
}

func TestIstioRouterOnRealAPIServers(t *testing.T) {
	cs := kubetest.StartN(t, "seoul", "busan")
	seoul, busan := cs[0], cs[1]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	routers := map[string]Router{}
	for _, c := range cs {
		applyIstioScaffold(t, ctx, c)
		r, err := NewKubernetesRouter("istio", c.Clients, "default")
		if err != nil {
			t.Fatal(err)
		}
		routers[c.Name] = r
		if err := r.SetWeights(ctx, "shop", Weights{"v1": Total}); err != nil {
			t.Fatalf("first release on the scaffold's objects: %v", err)
		}
	}

	// The team adds a route with its own client after Pave took over.
	vss := seoul.Clients.Istio.NetworkingV1().VirtualServices("default")
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		vs, err := vss.Get(ctx, "shop", metav1.GetOptions{})
		if err != nil {
			return err
		}
		vs.Spec.Http = append(vs.Spec.Http[:2:2], append([]*networkingv1.HTTPRoute{teamRoute()}, vs.Spec.Http[2:]...)...)
		vs.Labels = map[string]string{"team.example/owner": "payments"}
		_, err = vss.Update(ctx, vs, metav1.UpdateOptions{FieldManager: "team"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	// 99.99 / 0.01 and 99.9999 / 0.0001, as relative weights the real
	// schema accepts.
	for _, step := range []struct {
		w   Weights
		raw string
	}{
		{Weights{"v1": 999_900, "v2": 100}, "v1=999900 v2=100"},
		{Weights{"v1": 999_999, "v2": 1}, "v1=999999 v2=1"},
	} {
		if err := routers["seoul"].SetWeights(ctx, "shop", step.w); err != nil {
			t.Fatal(err)
		}
		got, err := routers["seoul"].Weights(ctx, "shop")
		if err != nil || !sameW(got, step.w) {
			t.Fatalf("set %s, read back %s (%v)", step.w, got, err)
		}
		if raw := rawWeights(t, ctx, seoul); raw != step.raw {
			t.Fatalf("stored weights %s, want %s", raw, step.raw)
		}
	}
	vs, err := vss.Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := routeNames(vs); got != "pave-header-v1,pave-header-v2,pinned-canary,team-admin,primary" {
		t.Fatalf("routes %s: the team's route must survive, tester routes first", got)
	}
	if vs.Labels["team.example/owner"] != "payments" || route(vs, "primary").Timeout.AsDuration() != 10*time.Second {
		t.Fatal("the team's label or the scaffold's timeout was lost")
	}
	// The same weights again: nothing written, the resourceVersion stays.
	if err := routers["seoul"].SetWeights(ctx, "shop", Weights{"v1": 999_999, "v2": 1}); err != nil {
		t.Fatal(err)
	}
	if again, _ := vss.Get(ctx, "shop", metav1.GetOptions{}); again.ResourceVersion != vs.ResourceVersion {
		t.Fatal("repeating the same weights wrote the VirtualService")
	}

	// The seoul API server goes away: the error names the cluster and the
	// object; busan keeps its weights.
	seoul.Stop()
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	err = routers["seoul"].SetWeights(sctx, "shop", Weights{"v1": Total})
	mustContain(t, err, "cluster seoul", "virtualservice default/shop", "cannot reach the API server")
	if w, err := routers["busan"].Weights(ctx, "shop"); err != nil || w["v1"] != Total || len(w) != 1 {
		t.Fatalf("busan's weights %s (%v)", w, err)
	}
	if raw := rawWeights(t, ctx, busan); raw != "v1=1000000" {
		t.Fatalf("busan stores %s", raw)
	}
}

// staleIstio wraps a real client: before the first VirtualService update
// it lets another writer change the object, so the update Pave sends
// carries a resourceVersion the real API server refuses.
type staleIstio struct {
	istioclient.Interface
	before func()
}

type staleNet struct {
	istionet.NetworkingV1Interface
	before func()
}

type staleVS struct {
	istionet.VirtualServiceInterface
	before func()
}

func (s staleIstio) NetworkingV1() istionet.NetworkingV1Interface {
	return staleNet{s.Interface.NetworkingV1(), s.before}
}

func (s staleNet) VirtualServices(ns string) istionet.VirtualServiceInterface {
	return staleVS{s.NetworkingV1Interface.VirtualServices(ns), s.before}
}

func (s staleVS) Update(ctx context.Context, vs *istioapi.VirtualService, o metav1.UpdateOptions) (*istioapi.VirtualService, error) {
	s.before()
	return s.VirtualServiceInterface.Update(ctx, vs, o)
}

func TestIstioRouterRetriesRealConflictsAndRefusesWhatItDoesNotOwn(t *testing.T) {
	c := kubetest.Start(t, "seoul")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	applyIstioScaffold(t, ctx, c)
	vss := c.Clients.Istio.NetworkingV1().VirtualServices("default")

	// A team write lands between Pave's read and Pave's update.
	var once sync.Once
	interloped := false
	before := func() {
		once.Do(func() {
			vs, err := vss.Get(ctx, "shop", metav1.GetOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			vs.Spec.Http = append(vs.Spec.Http, teamRoute())
			if _, err := vss.Update(ctx, vs, metav1.UpdateOptions{FieldManager: "team"}); err != nil {
				t.Error(err)
				return
			}
			interloped = true
		})
	}
	clients := *c.Clients
	clients.Istio = staleIstio{c.Clients.Istio, before}
	r, err := NewKubernetesRouter("istio", &clients, "default")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetWeights(ctx, "shop", Weights{"v1": 999_900, "v2": 100}); err != nil {
		t.Fatalf("a stale write must be retried: %v", err)
	}
	if !interloped {
		t.Fatal("the other writer never wrote")
	}
	vs, err := vss.Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := routeNames(vs); got != "pave-header-v1,pave-header-v2,pinned-canary,primary,team-admin" {
		t.Fatalf("routes %s: Pave's retry must keep the route written in between", got)
	}
	if raw := rawWeights(t, ctx, c); raw != "v1=999900 v2=100" {
		t.Fatalf("stored %s", raw)
	}

	// Racing control planes: every change lands, none is lost.
	a, _ := NewKubernetesRouter("istio", c.Clients, "default")
	b, _ := NewKubernetesRouter("istio", c.Clients, "default")
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 10 {
		for _, r := range []Router{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- r.SetWeights(ctx, "shop", Weights{"v1": Total - int64(i+1), "v2": int64(i + 1)})
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a racing change failed: %v", err)
		}
	}
	if w, err := a.Weights(ctx, "shop"); err != nil || w["v2"] < 1 || w["v2"] > 10 {
		t.Fatalf("after the race %s (%v)", w, err)
	}

	// The team renames the primary route: the VirtualService is no longer
	// one Pave drives. A clear error, and nothing is written, not even a
	// subset.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		vs, err := vss.Get(ctx, "shop", metav1.GetOptions{})
		if err != nil {
			return err
		}
		route(vs, PrimaryRoute).Name = "main"
		_, err = vss.Update(ctx, vs, metav1.UpdateOptions{FieldManager: "team"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	drs := c.Clients.Istio.NetworkingV1().DestinationRules("default")
	drBefore, err := drs.Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vsBefore, err := vss.Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = a.SetWeights(ctx, "shop", Weights{"v3": Total})
	mustContain(t, err, "cluster seoul", "virtualservice default/shop", `no HTTP route named "primary"`, `"main"`)
	_, err = a.Weights(ctx, "shop")
	mustContain(t, err, "cluster seoul", "virtualservice default/shop", `"main"`)
	drAfter, err1 := drs.Get(ctx, "shop", metav1.GetOptions{})
	vsAfter, err2 := vss.Get(ctx, "shop", metav1.GetOptions{})
	if err1 != nil || err2 != nil || drAfter.ResourceVersion != drBefore.ResourceVersion || vsAfter.ResourceVersion != vsBefore.ResourceVersion {
		t.Fatalf("a refused change wrote the DestinationRule or the VirtualService (%v %v)", err1, err2)
	}
}

func TestGatewayAPIRouterOnARealAPIServer(t *testing.T) {
	c := kubetest.Start(t, "seoul")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, _, hr := scaffoldObjects(t, "shop")
	routes := c.Clients.Gateway.GatewayV1().HTTPRoutes("default")
	if _, err := routes.Create(ctx, hr, metav1.CreateOptions{FieldManager: "team"}); err != nil {
		t.Fatalf("apply the scaffold's HTTPRoute: %v", err)
	}
	r, err := NewKubernetesRouter("gatewayapi", c.Clients, "default")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Weights(ctx, "shop"); err == nil || !strings.Contains(err.Error(), "not a per-version Service") {
		t.Fatalf("the scaffold's tracks are not versions: %v", err)
	}
	for _, w := range []Weights{{"v1": Total}, {"v1": 999_900, "v2": 100}, {"v1": 999_999, "v2": 1}} {
		if err := r.SetWeights(ctx, "shop", w); err != nil {
			t.Fatalf("set %s: %v", w, err)
		}
		if got, err := r.Weights(ctx, "shop"); err != nil || !sameW(got, w) {
			t.Fatalf("set %s, read back %s (%v)", w, got, err)
		}
	}
	// The team adds a rule; Pave's next change keeps it.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		hr, err := routes.Get(ctx, "shop", metav1.GetOptions{})
		if err != nil {
			return err
		}
		hr.Spec.Rules = append(hr.Spec.Rules, teamRule())
		_, err = routes.Update(ctx, hr, metav1.UpdateOptions{FieldManager: "team"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetWeights(ctx, "shop", Weights{"v1": 999_900, "v2": 100}); err != nil {
		t.Fatal(err)
	}
	got, err := routes.Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var desc []string
	for _, rule := range got.Spec.Rules {
		name := "-"
		if rule.Name != nil {
			name = string(*rule.Name)
		}
		desc = append(desc, name+"("+backends(rule)+")")
	}
	want := "pave-header-v1(shop-v1:80/1),pave-header-v2(shop-v2:80/1),-(shop-canary:80/1),-(shop-v1:80/999900 shop-v2:80/100),-(shop-admin:8080/1)"
	if strings.Join(desc, ",") != want {
		t.Fatalf("rules\n%s\nwant\n%s", strings.Join(desc, ","), want)
	}
	// The API server's defaults are spelled out, so the same weights again
	// write nothing.
	if err := r.SetWeights(ctx, "shop", Weights{"v1": 999_900, "v2": 100}); err != nil {
		t.Fatal(err)
	}
	if again, _ := routes.Get(ctx, "shop", metav1.GetOptions{}); again.ResourceVersion != got.ResourceVersion {
		t.Fatal("repeating the same weights wrote the HTTPRoute")
	}
	// A version name the rule-name pattern refuses still gets a tester
	// rule, unnamed, found again by its header.
	if err := r.SetWeights(ctx, "shop", Weights{"v1": 999_900, "v2..rc": 100}); err != nil {
		t.Fatal(err)
	}
	if w, err := r.Weights(ctx, "shop"); err != nil || w["v2..rc"] != 100 {
		t.Fatalf("read %s (%v)", w, err)
	}

	// Missing route: names the cluster and the manifests to apply.
	err = r.SetWeights(ctx, "cart", Weights{"v1": Total})
	mustContain(t, err, "cluster seoul: httproute default/cart not found: apply the service's deploy/gateway-api manifests")
}
