package traffic

import (
	"context"
	"errors"
	"strings"
	"testing"

	networkingv1 "istio.io/api/networking/v1"
	istioapi "istio.io/client-go/pkg/apis/networking/v1"
	istiofake "istio.io/client-go/pkg/clientset/versioned/fake"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"

	"github.com/pave-platform/pave/internal/kube"
	"github.com/pave-platform/pave/internal/state"
)

var bg = context.Background()

// scaffoldIstio are the objects `pave new` writes for a service (the
// scaffold's deploy/base), plus a route the team added.
func scaffoldIstio(service string) (*istioapi.VirtualService, *istioapi.DestinationRule) {
	vs := &istioapi.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: service, Namespace: "default"}}
	vs.Spec.Hosts = []string{service}
	vs.Spec.Http = []*networkingv1.HTTPRoute{
		{Name: "pinned-canary", Match: []*networkingv1.HTTPMatchRequest{{Headers: map[string]*networkingv1.StringMatch{"x-pave-track": {MatchType: &networkingv1.StringMatch_Exact{Exact: "canary"}}}}},
			Route: []*networkingv1.HTTPRouteDestination{{Destination: &networkingv1.Destination{Host: service, Subset: "canary"}}}},
		{Name: "team-admin", Match: []*networkingv1.HTTPMatchRequest{{Uri: &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Prefix{Prefix: "/admin"}}}},
			Route: []*networkingv1.HTTPRouteDestination{{Destination: &networkingv1.Destination{Host: "admin"}}}},
		{Name: "primary", Timeout: nil, Route: []*networkingv1.HTTPRouteDestination{
			{Destination: &networkingv1.Destination{Host: service, Subset: "stable"}, Weight: 100},
			{Destination: &networkingv1.Destination{Host: service, Subset: "canary"}, Weight: 0}}},
	}
	dr := &istioapi.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: service, Namespace: "default"}}
	dr.Spec.Host = service
	dr.Spec.Subsets = []*networkingv1.Subset{{Name: "stable", Labels: map[string]string{"pave.dev/track": "stable"}}, {Name: "canary", Labels: map[string]string{"pave.dev/track": "canary"}}}
	return vs, dr
}

func TestIstioRouterWeightsAtFineResolution(t *testing.T) {
	vs, dr := scaffoldIstio("shop")
	fake := istiofake.NewSimpleClientset(vs, dr)
	r, err := NewKubernetesRouter("istio", &kube.Cluster{Name: "seoul", Istio: fake}, "default")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Weights(bg, "shop"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("before any release the route has track subsets, not versions: %v, want not found", err)
	}
	for _, w := range []Weights{{"v1": Total}, {"v1": 999_900, "v2": 100}, {"v1": 999_999, "v2": 1}, {"v1": 500_000, "v2": 500_000}} {
		if err := r.SetWeights(bg, "shop", w); err != nil {
			t.Fatal(err)
		}
		got, err := r.Weights(bg, "shop")
		if err != nil || got.String() != w.String() {
			t.Fatalf("set %s, read %s (%v)", w, got, err)
		}
	}
	vs, _ = fake.NetworkingV1().VirtualServices("default").Get(bg, "shop", metav1.GetOptions{})
	var names []string
	for _, h := range vs.Spec.Http {
		names = append(names, h.Name)
	}
	if strings.Join(names, ",") != "pave-header-v1,pave-header-v2,pinned-canary,team-admin,primary" {
		t.Fatalf("routes %v: header routes first, the team's kept in order", names)
	}
	if m := vs.Spec.Http[1].Match[0].Headers[VersionHeader].GetExact(); m != "v2" {
		t.Errorf("header route matches %q", m)
	}
	if vs.Spec.Http[3].Route[0].Destination.Host != "admin" {
		t.Error("the team's route was changed")
	}
	dr, _ = fake.NetworkingV1().DestinationRules("default").Get(bg, "shop", metav1.GetOptions{})
	if len(dr.Spec.Subsets) != 4 || dr.Spec.Subsets[3].Labels["version"] != "v2" {
		t.Errorf("subsets %v: want the team's two plus one per version", dr.Spec.Subsets)
	}
}

func TestIstioRouterRetriesConflictsAndNamesWhatIsWrong(t *testing.T) {
	vs, dr := scaffoldIstio("shop")
	fake := istiofake.NewSimpleClientset(vs, dr)
	conflicts := 0
	fake.PrependReactor("update", "virtualservices", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts == 0 {
			conflicts++
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "networking.istio.io", Resource: "virtualservices"}, "shop", errors.New("the object has been modified"))
		}
		return false, nil, nil
	})
	r := &IstioRouter{c: &kube.Cluster{Name: "seoul", Istio: fake}, ns: "default"}
	if err := r.SetWeights(bg, "shop", Weights{"v1": Total}); err != nil {
		t.Fatalf("a conflict once must be retried: %v", err)
	}
	if conflicts != 1 {
		t.Fatal("the reactor never ran")
	}
	// No route named primary: the error names cluster, object and routes.
	vs2, dr2 := scaffoldIstio("cart")
	vs2.Spec.Http[2].Name = "main"
	r2 := &IstioRouter{c: &kube.Cluster{Name: "busan", Istio: istiofake.NewSimpleClientset(vs2, dr2)}, ns: "default"}
	err := r2.SetWeights(bg, "cart", Weights{"v1": Total})
	if err == nil || !strings.Contains(err.Error(), "cluster busan") || !strings.Contains(err.Error(), "virtualservice default/cart") || !strings.Contains(err.Error(), `"main"`) {
		t.Fatalf("error %v", err)
	}
	got, _ := r2.c.Istio.NetworkingV1().VirtualServices("default").Get(bg, "cart", metav1.GetOptions{})
	if len(got.Spec.Http) != 3 {
		t.Fatal("a refused change modified the VirtualService")
	}
	// A missing VirtualService.
	r3 := &IstioRouter{c: &kube.Cluster{Name: "jeju", Istio: istiofake.NewSimpleClientset()}, ns: "default"}
	if err := r3.SetWeights(bg, "pay", Weights{"v1": Total}); err == nil || !strings.Contains(err.Error(), "cluster jeju") || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("missing objects: %v", err)
	}
}

func scaffoldRoute(service string) *gatewayv1.HTTPRoute {
	port := gatewayv1.PortNumber(80)
	w100, w0 := int32(100), int32(0)
	ref := func(n string, w *int32) gatewayv1.HTTPBackendRef {
		return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(n), Port: &port}, Weight: w}}
	}
	hr := &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: service, Namespace: "default"}}
	hr.Spec.Hostnames = []gatewayv1.Hostname{gatewayv1.Hostname(service + ".example.com")}
	hr.Spec.Rules = []gatewayv1.HTTPRouteRule{
		{Matches: []gatewayv1.HTTPRouteMatch{{Headers: []gatewayv1.HTTPHeaderMatch{{Name: "x-pave-track", Value: "canary"}}}}, BackendRefs: []gatewayv1.HTTPBackendRef{ref(service+"-canary", nil)}},
		{BackendRefs: []gatewayv1.HTTPBackendRef{ref(service+"-stable", &w100), ref(service+"-canary", &w0)}},
	}
	return hr
}

func TestGatewayAPIRouterWeightsInPPM(t *testing.T) {
	fake := gwfake.NewSimpleClientset(scaffoldRoute("shop"))
	r, err := NewKubernetesRouter("gatewayapi", &kube.Cluster{Name: "seoul", Gateway: fake}, "default")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Weights(bg, "shop"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("scaffold's stable/canary Services are not versions: %v", err)
	}
	w := Weights{"v1": 999_999, "v2": 1}
	if err := r.SetWeights(bg, "shop", w); err != nil {
		t.Fatal(err)
	}
	got, err := r.Weights(bg, "shop")
	if err != nil || got.String() != w.String() {
		t.Fatalf("read %s %v", got, err)
	}
	hr, _ := fake.GatewayV1().HTTPRoutes("default").Get(bg, "shop", metav1.GetOptions{})
	if len(hr.Spec.Rules) != 4 || *hr.Spec.Rules[0].Name != "pave-header-v1" || len(hr.Spec.Rules[2].Matches) != 1 {
		t.Fatalf("rules %+v", hr.Spec.Rules)
	}
	primary := hr.Spec.Rules[3]
	if string(primary.BackendRefs[1].Name) != "shop-v2" || *primary.BackendRefs[1].Weight != 1 || *primary.BackendRefs[0].Weight != 999_999 {
		t.Fatalf("primary backendRefs %+v", primary.BackendRefs)
	}
	if _, err := NewKubernetesRouter("linkerd", &kube.Cluster{Name: "x"}, ""); err == nil {
		t.Fatal("unknown router kind accepted")
	}
}

func TestToPPMNormalisesHumanWeights(t *testing.T) {
	w, err := toPPM(map[string]int64{"v1": 2, "v2": 1})
	if err != nil || w.Validate() != nil || w["v1"] != 666_667 || w["v2"] != 333_333 {
		t.Fatalf("%v %v", w, err)
	}
	if _, err := toPPM(map[string]int64{"v1": 0}); err == nil {
		t.Fatal("all-zero weights accepted")
	}
}
