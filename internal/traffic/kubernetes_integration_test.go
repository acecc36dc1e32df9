package traffic_test

import (
	"context"
	"sync"
	"testing"
	"time"

	networkingv1 "istio.io/api/networking/v1"
	istioapi "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pave-platform/pave/internal/kube/kubetest"
	"github.com/pave-platform/pave/internal/traffic"
)

// TestIstioRouterRacesOnARealAPIServer: two control planes change the same
// VirtualService at once; the real API server refuses stale writes
// (resourceVersion) and every change is retried until it lands, with the
// team's route intact and the relative weights accepted by Istio's schema.
func TestIstioRouterRacesOnARealAPIServer(t *testing.T) {
	c := kubetest.Start(t, "seoul")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	vs := &istioapi.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "default"}}
	vs.Spec.Hosts = []string{"shop"}
	vs.Spec.Http = []*networkingv1.HTTPRoute{
		{Name: "team-admin", Match: []*networkingv1.HTTPMatchRequest{{Uri: &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Prefix{Prefix: "/admin"}}}},
			Route: []*networkingv1.HTTPRouteDestination{{Destination: &networkingv1.Destination{Host: "admin"}}}},
		{Name: "primary", Route: []*networkingv1.HTTPRouteDestination{{Destination: &networkingv1.Destination{Host: "shop", Subset: "stable"}, Weight: 100}}},
	}
	if _, err := c.Clients.Istio.NetworkingV1().VirtualServices("default").Create(ctx, vs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dr := &istioapi.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "default"}}
	dr.Spec.Host = "shop"
	if _, err := c.Clients.Istio.NetworkingV1().DestinationRules("default").Create(ctx, dr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	a, _ := traffic.NewKubernetesRouter("istio", c.Clients, "default")
	b, _ := traffic.NewKubernetesRouter("istio", c.Clients, "default")
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 20 {
		for _, r := range []traffic.Router{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- r.SetWeights(ctx, "shop", traffic.Weights{"v1": traffic.Total - int64(i+1), "v2": int64(i + 1)})
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a concurrent change was lost: %v", err)
		}
	}
	w, err := a.Weights(ctx, "shop")
	if err != nil || w.Validate() != nil || w["v2"] < 1 || w["v2"] > 20 {
		t.Fatalf("final weights %s %v", w, err)
	}
	got, _ := c.Clients.Istio.NetworkingV1().VirtualServices("default").Get(ctx, "shop", metav1.GetOptions{})
	if len(got.Spec.Http) != 4 || got.Spec.Http[2].Name != "team-admin" {
		t.Fatalf("routes after the race: %d, third %q", len(got.Spec.Http), got.Spec.Http[2].Name)
	}
	// 0.0001% is written as a relative weight the real schema accepts.
	if err := a.SetWeights(ctx, "shop", traffic.Weights{"v1": traffic.Total - 1, "v2": 1}); err != nil {
		t.Fatal(err)
	}
	if w, _ := a.Weights(ctx, "shop"); w["v2"] != 1 {
		t.Fatalf("read back %s", w)
	}
}
