package fleet

import (
	"strings"
	"testing"

	networkingv1 "istio.io/api/networking/v1"
	istioapi "istio.io/client-go/pkg/apis/networking/v1"
	istiofake "istio.io/client-go/pkg/clientset/versioned/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pave-platform/pave/internal/kube"
)

func TestIstioEdgeWritesLocalityDistribution(t *testing.T) {
	dr := &istioapi.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "default"}}
	dr.Spec.Host = "shop"
	dr.Spec.Subsets = []*networkingv1.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}}
	fake := istiofake.NewSimpleClientset(dr)
	e := IstioEdge{Cluster: &kube.Cluster{Name: "mesh", Istio: fake}, Namespace: "default"}
	if err := e.Apply(ctx, "shop", []Share{{Cluster: "seoul", Datacenter: "kr-1", Weight: 750_000}, {Cluster: "busan", Datacenter: "kr-2", Weight: 250_000}}); err != nil {
		t.Fatal(err)
	}
	got, _ := fake.NetworkingV1().DestinationRules("default").Get(ctx, "shop", metav1.GetOptions{})
	lb := got.Spec.TrafficPolicy.GetLoadBalancer().GetLocalityLbSetting()
	if lb == nil || !lb.GetEnabled().GetValue() || lb.Distribute[0].To["kr-1/*"] != 75 || lb.Distribute[0].To["kr-2/*"] != 25 {
		t.Fatalf("locality setting %v", lb)
	}
	if got.Spec.TrafficPolicy.OutlierDetection == nil || len(got.Spec.Subsets) != 1 {
		t.Fatalf("outlier detection added, subsets kept: %v", &got.Spec)
	}
	err := e.Apply(ctx, "cart", []Share{{Cluster: "seoul", Weight: 1_000_000}})
	if err == nil || !strings.Contains(err.Error(), "cluster mesh: destinationrule default/cart") {
		t.Fatalf("missing rule: %v", err)
	}
}
