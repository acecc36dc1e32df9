package traffic

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwfake "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/fake"

	"github.com/pave-platform/pave/internal/kube"
	"github.com/pave-platform/pave/internal/state"
)

func gatewayFake(objs ...runtime.Object) *gwfake.Clientset { return gwfake.NewSimpleClientset(objs...) }

// teamRule is a rule the team added to the scaffold's HTTPRoute.
func teamRule() gatewayv1.HTTPRouteRule {
	prefix, admin, port := gatewayv1.PathMatchPathPrefix, "/admin", gatewayv1.PortNumber(8080)
	return gatewayv1.HTTPRouteRule{
		Matches:     []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: &prefix, Value: &admin}}},
		BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{Name: "shop-admin", Port: &port}}}}}
}

func gatewayScaffold(t *testing.T, name string) (*GatewayAPIRouter, *gwfake.Clientset) {
	t.Helper()
	_, _, hr := scaffoldObjects(t, "shop")
	hr.Spec.Rules = append([]gatewayv1.HTTPRouteRule{teamRule()}, hr.Spec.Rules...)
	fake := gatewayFake(hr)
	r, err := NewKubernetesRouter("gatewayapi", &kube.Cluster{Name: name, Gateway: fake}, "default")
	if err != nil {
		t.Fatal(err)
	}
	return r.(*GatewayAPIRouter), fake
}

func getRoute(t *testing.T, f *gwfake.Clientset, name string) *gatewayv1.HTTPRoute {
	t.Helper()
	hr, err := f.GatewayV1().HTTPRoutes("default").Get(bg, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return hr
}

// backends renders a rule's backendRefs as "name:port/weight".
func backends(rule gatewayv1.HTTPRouteRule) string {
	var out []string
	for _, b := range rule.BackendRefs {
		s := string(b.Name)
		if b.Port != nil {
			s += fmt.Sprintf(":%d", *b.Port)
		}
		if b.Weight != nil {
			s += fmt.Sprintf("/%d", *b.Weight)
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

func TestGatewayAPIRouterOnTheScaffoldInPPM(t *testing.T) {
	r, fake := gatewayScaffold(t, "seoul")
	before := getRoute(t, fake, "shop")
	if _, err := r.Weights(bg, "shop"); !errors.Is(err, state.ErrNotFound) || !strings.Contains(err.Error(), "shop-stable") {
		t.Fatalf("the scaffold's stable/canary Services are not versions: %v", err)
	}
	for _, w := range []Weights{{"v1": Total}, {"v1": 999_900, "v2": 100}, {"v1": 999_999, "v2": 1}, {"v2": Total, "v1": 0}} {
		if err := r.SetWeights(bg, "shop", w); err != nil {
			t.Fatal(err)
		}
		if got, err := r.Weights(bg, "shop"); err != nil || !sameW(got, w) {
			t.Fatalf("set %s, read %s (%v)", w, got, err)
		}
	}
	if err := r.SetWeights(bg, "shop", Weights{"v1": 999_999, "v2": 1}); err != nil {
		t.Fatal(err)
	}
	hr := getRoute(t, fake, "shop")
	if len(hr.Spec.Rules) != 5 {
		t.Fatalf("%d rules: want 2 tester rules, the team's, the scaffold's pinned canary and the primary", len(hr.Spec.Rules))
	}
	for i, v := range []string{"v1", "v2"} {
		h := hr.Spec.Rules[i]
		if h.Name == nil || string(*h.Name) != "pave-header-"+v || len(h.Matches) != 1 || h.Matches[0].Headers[0].Name != VersionHeader ||
			h.Matches[0].Headers[0].Value != v || backends(h) != "shop-"+v+":80/1" {
			t.Fatalf("tester rule %d: %+v", i, h)
		}
	}
	if !equality.Semantic.DeepEqual(hr.Spec.Rules[2], before.Spec.Rules[0]) || !equality.Semantic.DeepEqual(hr.Spec.Rules[3], before.Spec.Rules[1]) {
		t.Fatalf("the team's and the pinned canary rule changed: %+v", hr.Spec.Rules[2:4])
	}
	if got := backends(hr.Spec.Rules[4]); got != "shop-v1:80/999999 shop-v2:80/1" {
		t.Fatalf("primary backendRefs %s", got)
	}
	if !equality.Semantic.DeepEqual(hr.Spec.ParentRefs, before.Spec.ParentRefs) || !equality.Semantic.DeepEqual(hr.Spec.Hostnames, before.Spec.Hostnames) {
		t.Fatal("parentRefs or hostnames changed")
	}
	// The same weights again: no write.
	updates := countUpdates(&fake.Fake, "httproutes")
	n := updates()
	if err := r.SetWeights(bg, "shop", Weights{"v1": 999_999, "v2": 1}); err != nil || updates() != n {
		t.Fatalf("repeat wrote the route (%v)", err)
	}
}

func TestGatewayAPIRouterReadsWeightsPeopleWroteAndRetriesConflicts(t *testing.T) {
	_, _, hr := scaffoldObjects(t, "shop")
	w90, w10 := int32(90), int32(10)
	primary := &hr.Spec.Rules[1]
	primary.BackendRefs[0].Name, primary.BackendRefs[0].Weight = "shop-v1", &w90
	primary.BackendRefs[1].Name, primary.BackendRefs[1].Weight = "shop-v2", &w10
	fake := gatewayFake(hr)
	r := &GatewayAPIRouter{c: &kube.Cluster{Name: "seoul", Gateway: fake}, ns: "default"}
	if w, err := r.Weights(bg, "shop"); err != nil || w["v1"] != 900_000 || w["v2"] != 100_000 {
		t.Fatalf("90:10 read as %s (%v)", w, err)
	}
	conflicts := conflictOnce(&fake.Fake, "httproutes")
	if err := r.SetWeights(bg, "shop", Weights{"v1": 999_900, "v2": 100}); err != nil {
		t.Fatalf("a conflict once must be retried: %v", err)
	}
	if *conflicts != 2 {
		t.Fatalf("%d updates; want a refused one and a retry", *conflicts)
	}
	if w, err := r.Weights(bg, "shop"); err != nil || w["v2"] != 100 {
		t.Fatalf("after the retry %s (%v)", w, err)
	}
}

func TestGatewayAPIRouterErrorsNameClusterAndObject(t *testing.T) {
	r := &GatewayAPIRouter{c: &kube.Cluster{Name: "jeju", Gateway: gatewayFake()}, ns: "default"}
	mustContain(t, r.SetWeights(bg, "pay", Weights{"v1": Total}), "cluster jeju: httproute default/pay not found: apply the service's deploy/gateway-api manifests")

	// Only rules with matches, or to other Services: nothing Pave drives.
	_, _, hr := scaffoldObjects(t, "shop")
	hr.Spec.Rules[1].BackendRefs[0].Name = "legacy"
	hr.Spec.Rules = append(hr.Spec.Rules, teamRule())
	fake := gatewayFake(hr)
	r2 := &GatewayAPIRouter{c: &kube.Cluster{Name: "busan", Gateway: fake}, ns: "default"}
	err := r2.SetWeights(bg, "shop", Weights{"v1": Total})
	mustContain(t, err, "cluster busan", "httproute default/shop", "rule 1 matches some requests, to [shop-canary]",
		"rule 2 matches every request, to [legacy shop-canary]", "Services shop-*", "deploy/gateway-api/httproute.yaml")
	if countUpdates(&fake.Fake, "httproutes")() != 0 {
		t.Fatal("a refused change wrote the route")
	}
	// A rule the team named primary is Pave's, whatever it matches.
	name := gatewayv1.SectionName("primary")
	hr.Spec.Rules[2].Name = &name
	r2.c.Gateway = gatewayFake(hr)
	if err := r2.SetWeights(bg, "shop", Weights{"v1": Total}); err != nil {
		t.Fatal(err)
	}
	if got := backends(getRoute(t, r2.c.Gateway.(*gwfake.Clientset), "shop").Spec.Rules[3]); got != "shop-v1:8080/1000000" {
		t.Fatalf("the rule named primary: %s", got)
	}
}
