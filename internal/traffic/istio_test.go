package traffic

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	networkingv1 "istio.io/api/networking/v1"
	istioapi "istio.io/client-go/pkg/apis/networking/v1"
	istiofake "istio.io/client-go/pkg/clientset/versioned/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/pave-platform/pave/internal/kube"
	"github.com/pave-platform/pave/internal/state"
)

// teamRoute is a route the team added to the scaffold's VirtualService.
func teamRoute() *networkingv1.HTTPRoute {
	return &networkingv1.HTTPRoute{Name: "team-admin",
		Match: []*networkingv1.HTTPMatchRequest{{Uri: &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Prefix{Prefix: "/admin"}}}},
		Route: []*networkingv1.HTTPRouteDestination{{Destination: &networkingv1.Destination{Host: "shop-admin"}}}}
}

// istioScaffold is a fake cluster holding the scaffold's objects for shop,
// plus the team's route before primary.
func istioScaffold(t *testing.T, name string) (*IstioRouter, *istiofake.Clientset) {
	t.Helper()
	vs, dr, _ := scaffoldObjects(t, "shop")
	vs.Spec.Http = append([]*networkingv1.HTTPRoute{vs.Spec.Http[0], teamRoute()}, vs.Spec.Http[1:]...)
	fake := istiofake.NewSimpleClientset(vs, dr)
	r, err := NewKubernetesRouter("istio", &kube.Cluster{Name: name, Istio: fake}, "default")
	if err != nil {
		t.Fatal(err)
	}
	return r.(*IstioRouter), fake
}

func getVS(t *testing.T, f *istiofake.Clientset, name string) *istioapi.VirtualService {
	t.Helper()
	vs, err := f.NetworkingV1().VirtualServices("default").Get(bg, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func routeNames(vs *istioapi.VirtualService) string {
	var out []string
	for _, h := range vs.Spec.Http {
		out = append(out, h.Name)
	}
	return strings.Join(out, ",")
}

func route(vs *istioapi.VirtualService, name string) *networkingv1.HTTPRoute {
	for _, h := range vs.Spec.Http {
		if h.Name == name {
			return h
		}
	}
	return nil
}

func TestIstioRouterOnTheScaffoldAtFineResolution(t *testing.T) {
	r, fake := istioScaffold(t, "seoul")
	before := getVS(t, fake, "shop")
	if _, err := r.Weights(bg, "shop"); !errors.Is(err, state.ErrNotFound) || !strings.Contains(err.Error(), `subset "stable"`) {
		t.Fatalf("before any release the route has the scaffold's track subsets, not versions: %v, want not found", err)
	}
	steps := []Weights{
		{"v1": Total},
		{"v1": 999_900, "v2": 100}, // 0.01%
		{"v1": 999_999, "v2": 1},   // 0.0001%
		{"v1": 500_000, "v2": 500_000},
		{"v1": 0, "v2": Total},
	}
	for _, w := range steps {
		if err := r.SetWeights(bg, "shop", w); err != nil {
			t.Fatal(err)
		}
		got, err := r.Weights(bg, "shop")
		if err != nil || !sameW(got, w) {
			t.Fatalf("set %s, read %s (%v)", w, got, err)
		}
	}
	// At 0.01% the route holds the relative weights 999900 : 100.
	if err := r.SetWeights(bg, "shop", Weights{"v1": 999_900, "v2": 100}); err != nil {
		t.Fatal(err)
	}
	vs := getVS(t, fake, "shop")
	if got := routeNames(vs); got != "pave-header-v1,pave-header-v2,pinned-canary,team-admin,primary" {
		t.Fatalf("routes %s: tester routes first, the scaffold's and the team's kept in order", got)
	}
	p := route(vs, "primary")
	if len(p.Route) != 2 || p.Route[0].Destination.Subset != "v1" || p.Route[0].Weight != 999_900 ||
		p.Route[1].Destination.Subset != "v2" || p.Route[1].Weight != 100 || p.Route[1].Destination.Host != "shop" {
		t.Fatalf("primary destinations %v", p.Route)
	}
	// The primary route's other fields are the scaffold's.
	bp := route(before, "primary")
	if !proto.Equal(p.Timeout, bp.Timeout) || !proto.Equal(p.Retries, bp.Retries) || p.Timeout.AsDuration().String() != "10s" {
		t.Fatalf("primary timeout/retries changed: %v %v", p.Timeout, p.Retries)
	}
	for _, name := range []string{"pinned-canary", "team-admin"} {
		if !proto.Equal(route(vs, name), route(before, name)) {
			t.Errorf("route %s changed: %v", name, route(vs, name))
		}
	}
	if strings.Join(vs.Spec.Hosts, ",") != strings.Join(before.Spec.Hosts, ",") {
		t.Errorf("hosts changed: %v", vs.Spec.Hosts)
	}
	h := route(vs, "pave-header-v2")
	if h.Match[0].Headers[VersionHeader].GetExact() != "v2" || h.Route[0].Destination.Subset != "v2" || h.Route[0].Weight != 0 ||
		h.Timeout.AsDuration().String() != "10s" {
		t.Fatalf("tester route %v: want x-pave-version exact v2 to subset v2, with primary's timeout", h)
	}

	dr, err := fake.NetworkingV1().DestinationRules("default").Get(bg, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var subsets []string
	for _, s := range dr.Spec.Subsets {
		subsets = append(subsets, s.Name+"="+s.Labels["version"]+s.Labels["pave.dev/track"])
	}
	if strings.Join(subsets, ",") != "stable=stable,canary=canary,v1=v1,v2=v2" {
		t.Fatalf("subsets %v: want the scaffold's two plus one per version", subsets)
	}
	if dr.Spec.TrafficPolicy.GetOutlierDetection().GetConsecutive_5XxErrors().GetValue() != 5 {
		t.Error("the scaffold's traffic policy was lost")
	}
}

func sameW(a, b Weights) bool {
	for k := range a {
		if a[k] != b[k] {
			return false
		}
	}
	for k := range b {
		if a[k] != b[k] {
			return false
		}
	}
	return true
}

func TestIstioRouterDropsZeroWeightsAndWritesOnlyChanges(t *testing.T) {
	r, fake := istioScaffold(t, "seoul")
	updates := countUpdates(&fake.Fake, "virtualservices")
	if err := r.SetWeights(bg, "shop", Weights{"v1": 0, "v2": Total}); err != nil {
		t.Fatal(err)
	}
	vs := getVS(t, fake, "shop")
	p := route(vs, "primary")
	if len(p.Route) != 1 || p.Route[0].Destination.Subset != "v2" || p.Route[0].Weight != int32(Total) {
		t.Fatalf("primary %v: want v2 alone", p.Route)
	}
	// The canary at 0 still has its tester route.
	if route(vs, "pave-header-v1") == nil {
		t.Fatalf("routes %s: testers lost v1", routeNames(vs))
	}
	n := updates()
	if err := r.SetWeights(bg, "shop", Weights{"v1": 0, "v2": Total}); err != nil {
		t.Fatal(err)
	}
	if updates() != n {
		t.Fatal("the same weights again wrote the VirtualService")
	}
	// A version that left the split loses its tester route.
	if err := r.SetWeights(bg, "shop", Weights{"v2": Total}); err != nil {
		t.Fatal(err)
	}
	if got := routeNames(getVS(t, fake, "shop")); got != "pave-header-v2,pinned-canary,team-admin,primary" {
		t.Fatalf("routes %s", got)
	}
}

func TestIstioRouterReadsWeightsPeopleWrote(t *testing.T) {
	vs, dr, _ := scaffoldObjects(t, "shop")
	dr.Spec.Subsets = append(dr.Spec.Subsets,
		&networkingv1.Subset{Name: "v1", Labels: map[string]string{"version": "v1"}},
		&networkingv1.Subset{Name: "v2", Labels: map[string]string{"version": "v2"}})
	p := vs.Spec.Http[1]
	p.Route = []*networkingv1.HTTPRouteDestination{
		{Destination: &networkingv1.Destination{Host: "shop", Subset: "v1"}, Weight: 90},
		{Destination: &networkingv1.Destination{Host: "shop", Subset: "v2"}, Weight: 10}}
	r := &IstioRouter{c: &kube.Cluster{Name: "seoul", Istio: istiofake.NewSimpleClientset(vs, dr)}, ns: "default"}
	w, err := r.Weights(bg, "shop")
	if err != nil || w["v1"] != 900_000 || w["v2"] != 100_000 {
		t.Fatalf("90:10 read as %s (%v)", w, err)
	}
	p.Route = []*networkingv1.HTTPRouteDestination{{Destination: &networkingv1.Destination{Host: "shop", Subset: "v2"}}}
	r.c.Istio = istiofake.NewSimpleClientset(vs, dr)
	if w, err := r.Weights(bg, "shop"); err != nil || w["v2"] != Total {
		t.Fatalf("a lone destination without weight: %s (%v)", w, err)
	}
}

func TestIstioRouterRetriesConflicts(t *testing.T) {
	r, fake := istioScaffold(t, "seoul")
	vsConflicts := conflictOnce(&fake.Fake, "virtualservices")
	drConflicts := conflictOnce(&fake.Fake, "destinationrules")
	if err := r.SetWeights(bg, "shop", Weights{"v1": 999_900, "v2": 100}); err != nil {
		t.Fatalf("a conflict once must be retried: %v", err)
	}
	if *vsConflicts != 2 || *drConflicts != 2 {
		t.Fatalf("updates: virtualservice %d, destinationrule %d; want a refused one and a retry each", *vsConflicts, *drConflicts)
	}
	if w, err := r.Weights(bg, "shop"); err != nil || w["v2"] != 100 {
		t.Fatalf("after the retry: %s (%v)", w, err)
	}
}

func TestIstioRouterGivesUpOnEndlessConflictsLeavingTrafficAsItWas(t *testing.T) {
	saved := ConflictBackoff
	ConflictBackoff.Steps, ConflictBackoff.Duration = 3, 0
	t.Cleanup(func() { ConflictBackoff = saved })
	r, fake := istioScaffold(t, "seoul")
	before := getVS(t, fake, "shop")
	fake.PrependReactor("update", "virtualservices", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, conflictErr()
	})
	err := r.SetWeights(bg, "shop", Weights{"v1": Total})
	mustContain(t, err, "cluster seoul", "virtualservice default/shop", "gave up after 3 tries", "traffic is as it was")
	if !proto.Equal(&getVS(t, fake, "shop").Spec, &before.Spec) {
		t.Fatal("the VirtualService changed")
	}
}

func TestIstioRouterRefusesWhatItDoesNotOwnBeforeWritingAnything(t *testing.T) {
	// No route named primary: nothing is written, not even subsets.
	vs, dr, _ := scaffoldObjects(t, "cart")
	vs.Spec.Http[1].Name = "main"
	vs.Spec.Http = append(vs.Spec.Http, &networkingv1.HTTPRoute{Route: vs.Spec.Http[1].Route})
	fake := istiofake.NewSimpleClientset(vs, dr)
	r := &IstioRouter{c: &kube.Cluster{Name: "busan", Istio: fake}, ns: "default"}
	err := r.SetWeights(bg, "cart", Weights{"v1": Total})
	mustContain(t, err, "cluster busan", "virtualservice default/cart", `no HTTP route named "primary"`, `"pinned-canary", "main", unnamed route 3`, "deploy/base/virtualservice.yaml")
	_, werr := r.Weights(bg, "cart")
	mustContain(t, werr, "cluster busan", `"main"`)
	if n := countUpdates(&fake.Fake, "virtualservices")() + countUpdates(&fake.Fake, "destinationrules")(); n != 0 {
		t.Fatalf("a refused change wrote %d objects", n)
	}

	// A missing VirtualService.
	r3 := &IstioRouter{c: &kube.Cluster{Name: "jeju", Istio: istiofake.NewSimpleClientset()}, ns: "default"}
	mustContain(t, r3.SetWeights(bg, "pay", Weights{"v1": Total}), "cluster jeju: virtualservice default/pay not found: apply the service's deploy/base manifests")
	_, werr = r3.Weights(bg, "pay")
	mustContain(t, werr, "cluster jeju: virtualservice default/pay not found")

	// A subset named after a version that selects something else.
	vs4, dr4, _ := scaffoldObjects(t, "shop")
	fake4 := istiofake.NewSimpleClientset(vs4, dr4)
	r4 := &IstioRouter{c: &kube.Cluster{Name: "ulsan", Istio: fake4}, ns: "default"}
	mustContain(t, r4.SetWeights(bg, "shop", Weights{"canary": Total}), "cluster ulsan", "destinationrule default/shop", `subset "canary"`, "not version=canary")
	if n := countUpdates(&fake4.Fake, "virtualservices")(); n != 0 {
		t.Fatal("the VirtualService was written although its subset was refused")
	}

	// A VirtualService the typed client cannot decode.
	vs5, dr5, _ := scaffoldObjects(t, "shop")
	fake5 := istiofake.NewSimpleClientset(vs5, dr5)
	fake5.PrependReactor("get", "virtualservices", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New(`bad value in field "weight": 4294967296 overflows int32`)
	})
	r5 := &IstioRouter{c: &kube.Cluster{Name: "daegu", Istio: fake5}, ns: "default"}
	mustContain(t, r5.SetWeights(bg, "shop", Weights{"v1": Total}), "cluster daegu", "virtualservice default/shop cannot be parsed", "overflows int32")
	if n := countUpdates(&fake5.Fake, "destinationrules")(); n != 0 {
		t.Fatal("the DestinationRule was written although the VirtualService cannot be read")
	}

	// Bad weights never reach the cluster.
	if err := r4.SetWeights(bg, "shop", Weights{"v1": 10}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("weights not summing to 100%%: %v", err)
	}
}

// TestIstioMirrorSetsAndClearsTheShadowStep: the primary route gets the
// canary's subset as mirror with mirrorPercentage (the subset is added),
// the weights and the team's route stay; a later SetWeights keeps the
// mirror on the primary route but not on the tester routes; nil clears.
func TestIstioMirrorSetsAndClearsTheShadowStep(t *testing.T) {
	r, fake := istioScaffold(t, "east")
	if err := r.SetWeights(bg, "shop", Weights{"v1": Total}); err != nil {
		t.Fatal(err)
	}
	if err := r.SetMirror(bg, "shop", &Mirror{Stable: "v1", Canary: "v2", Share: 250_000}); err != nil {
		t.Fatal(err)
	}
	vs := getVS(t, fake, "shop")
	p := route(vs, PrimaryRoute)
	if p.Mirror == nil || p.Mirror.Subset != "v2" || p.Mirror.Host != "shop" || p.MirrorPercentage == nil || p.MirrorPercentage.Value != 25 {
		t.Fatalf("mirror %v, percentage %v; want subset v2 at 25%%", p.Mirror, p.MirrorPercentage)
	}
	if len(p.Route) != 1 || p.Route[0].Destination.Subset != "v1" {
		t.Fatalf("the weights changed: %v", p.Route)
	}
	if route(vs, "team-admin") == nil {
		t.Fatal("the team's route is gone")
	}
	dr, err := fake.NetworkingV1().DestinationRules("default").Get(bg, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range dr.Spec.Subsets {
		found = found || s.Name == "v2" && s.Labels["version"] == "v2"
	}
	if !found {
		t.Fatal("no subset v2 for the mirror")
	}
	if err := r.SetWeights(bg, "shop", Weights{"v1": 990_000, "v2": 10_000}); err != nil {
		t.Fatal(err)
	}
	vs = getVS(t, fake, "shop")
	if route(vs, PrimaryRoute).Mirror == nil {
		t.Fatal("SetWeights dropped the mirror")
	}
	if h := route(vs, HeaderRoutePrefix+"v1"); h == nil || h.Mirror != nil {
		t.Fatalf("a tester route mirrors: %v", h)
	}
	if err := r.SetMirror(bg, "shop", nil); err != nil {
		t.Fatal(err)
	}
	if p := route(getVS(t, fake, "shop"), PrimaryRoute); p.Mirror != nil || p.MirrorPercentage != nil {
		t.Fatalf("mirror not cleared: %v %v", p.Mirror, p.MirrorPercentage)
	}
}
