package fleet

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingv1 "istio.io/api/networking/v1"
	istioapi "istio.io/client-go/pkg/apis/networking/v1"
	istiofake "istio.io/client-go/pkg/clientset/versioned/fake"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/pave-platform/pave/internal/kube"
)

func istioRule(name string) *istioapi.DestinationRule {
	dr := &istioapi.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", ResourceVersion: "1", Annotations: map[string]string{"team": "checkout"}}}
	dr.Spec.Host = name
	dr.Spec.Subsets = []*networkingv1.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}}
	dr.Spec.TrafficPolicy = &networkingv1.TrafficPolicy{
		ConnectionPool: &networkingv1.ConnectionPoolSettings{Tcp: &networkingv1.ConnectionPoolSettings_TCPSettings{MaxConnections: 100}},
		LoadBalancer: &networkingv1.LoadBalancerSettings{
			LbPolicy:          &networkingv1.LoadBalancerSettings_Simple{Simple: networkingv1.LoadBalancerSettings_LEAST_REQUEST},
			LocalityLbSetting: &networkingv1.LocalityLoadBalancerSetting{Failover: []*networkingv1.LocalityLoadBalancerSetting_Failover{{From: "kr-1", To: "kr-2"}}},
		},
	}
	return dr
}

func updates(fake *istiofake.Clientset) int {
	n := 0
	for _, a := range fake.Actions() {
		if a.GetVerb() == "update" {
			n++
		}
	}
	return n
}

func TestIstioEdgeWritesLocalityDistribution(t *testing.T) {
	ctx := context.Background()
	fake := istiofake.NewSimpleClientset(istioRule("checkout"))
	e := NewIstioEdge(&kube.Cluster{Name: "mesh", Istio: fake}, "shop")
	shares := []Share{{Cluster: "seoul", Datacenter: "kr-1", Weight: 750_000}, {Cluster: "busan", Datacenter: "kr-2", Weight: 250_000}, {Cluster: "tokyo", Datacenter: "jp-1", Weight: 0}}
	if err := e.Apply(ctx, "checkout", shares); err != nil {
		t.Fatal(err)
	}
	got, err := fake.NetworkingV1().DestinationRules("shop").Get(ctx, "checkout", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tp := got.Spec.TrafficPolicy
	lb := tp.GetLoadBalancer().GetLocalityLbSetting()
	if !lb.GetEnabled().GetValue() || len(lb.Distribute) != 1 || lb.Distribute[0].From != "*" {
		t.Fatalf("locality setting %v", lb)
	}
	if to := lb.Distribute[0].To; len(to) != 2 || to["kr-1/*"] != 75 || to["kr-2/*"] != 25 {
		t.Errorf("distribution %v, want kr-1 75, kr-2 25 and no jp-1 (Istio refuses 0)", to)
	}
	// Istio allows failover or distribute, not both.
	if len(lb.Failover) != 0 {
		t.Errorf("failover kept beside distribute: %v", lb.Failover)
	}
	// Everything else stays the team's.
	if tp.LoadBalancer.GetSimple() != networkingv1.LoadBalancerSettings_LEAST_REQUEST || tp.ConnectionPool.GetTcp().GetMaxConnections() != 100 ||
		len(got.Spec.Subsets) != 1 || got.Spec.Host != "checkout" || got.Annotations["team"] != "checkout" {
		t.Errorf("other fields changed: %v %v", &got.Spec, got.Annotations)
	}
	// Outlier detection is added, ejecting only for failures to connect.
	od := tp.OutlierDetection
	if od == nil || !od.SplitExternalLocalOriginErrors || od.GetConsecutive_5XxErrors() == nil || od.GetConsecutive_5XxErrors().GetValue() != 0 || od.GetConsecutiveLocalOriginFailures().GetValue() == 0 {
		t.Errorf("outlier detection %v", od)
	}
	// The same split again writes nothing.
	before := updates(fake)
	if err := e.Apply(ctx, "checkout", shares); err != nil {
		t.Fatal(err)
	}
	if n := updates(fake); n != before {
		t.Errorf("same split: %d more updates, want none", n-before)
	}
	// A new split moves the weights.
	if err := e.Apply(ctx, "checkout", []Share{{Cluster: "seoul", Datacenter: "kr-1", Weight: 1_000_000}, {Cluster: "busan", Datacenter: "kr-2"}}); err != nil {
		t.Fatal(err)
	}
	got, _ = fake.NetworkingV1().DestinationRules("shop").Get(ctx, "checkout", metav1.GetOptions{})
	if to := got.Spec.TrafficPolicy.LoadBalancer.LocalityLbSetting.Distribute[0].To; len(to) != 1 || to["kr-1/*"] != 100 {
		t.Errorf("drained busan: %v", to)
	}
}

func TestIstioEdgeKeepsTheTeamsOutlierDetectionAndCoversSubsets(t *testing.T) {
	ctx := context.Background()
	dr := istioRule("checkout")
	dr.Spec.TrafficPolicy.OutlierDetection = &networkingv1.OutlierDetection{Consecutive_5XxErrors: wrapperspb.UInt32(7)}
	// A subset's own load balancer replaces the top-level one in Istio,
	// so it must carry the distribution too.
	dr.Spec.Subsets = append(dr.Spec.Subsets, &networkingv1.Subset{Name: "v2", Labels: map[string]string{"version": "v2"},
		TrafficPolicy: &networkingv1.TrafficPolicy{LoadBalancer: &networkingv1.LoadBalancerSettings{LbPolicy: &networkingv1.LoadBalancerSettings_Simple{Simple: networkingv1.LoadBalancerSettings_RANDOM}}}})
	fake := istiofake.NewSimpleClientset(dr)
	if err := NewIstioEdge(&kube.Cluster{Name: "mesh", Istio: fake}, "shop").Apply(ctx, "checkout", []Share{{Cluster: "a", Datacenter: "kr-1", Weight: 500_000}, {Cluster: "b", Datacenter: "kr-2", Weight: 500_000}}); err != nil {
		t.Fatal(err)
	}
	got, _ := fake.NetworkingV1().DestinationRules("shop").Get(ctx, "checkout", metav1.GetOptions{})
	if od := got.Spec.TrafficPolicy.OutlierDetection; od.GetConsecutive_5XxErrors().GetValue() != 7 || od.SplitExternalLocalOriginErrors {
		t.Errorf("the team's outlier detection changed: %v", od)
	}
	sub := got.Spec.Subsets[1].TrafficPolicy.LoadBalancer
	if sub.GetSimple() != networkingv1.LoadBalancerSettings_RANDOM || sub.GetLocalityLbSetting().GetDistribute()[0].To["kr-2/*"] != 50 {
		t.Errorf("subset load balancer %v", sub)
	}
	if got.Spec.Subsets[0].TrafficPolicy != nil {
		t.Errorf("a subset without a policy got one: %v", got.Spec.Subsets[0])
	}
}

func TestIstioEdgeRetriesOnConflict(t *testing.T) {
	ctx := context.Background()
	fake := istiofake.NewSimpleClientset(istioRule("checkout"))
	conflicts := 2
	fake.PrependReactor("update", "destinationrules", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts > 0 {
			conflicts--
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "networking.istio.io", Resource: "destinationrules"}, "checkout", nil)
		}
		return false, nil, nil
	})
	if err := NewIstioEdge(&kube.Cluster{Name: "mesh", Istio: fake}, "shop").Apply(ctx, "checkout", []Share{{Cluster: "a", Datacenter: "kr-1", Weight: 1_000_000}}); err != nil {
		t.Fatal(err)
	}
	if n := updates(fake); n != 3 {
		t.Errorf("%d updates, want 2 refused and 1 taken", n)
	}
	got, _ := fake.NetworkingV1().DestinationRules("shop").Get(ctx, "checkout", metav1.GetOptions{})
	if got.Spec.TrafficPolicy.LoadBalancer.LocalityLbSetting.Distribute[0].To["kr-1/*"] != 100 {
		t.Errorf("not written after the conflicts: %v", &got.Spec)
	}
}

func TestIstioEdgeErrors(t *testing.T) {
	ctx := context.Background()
	zone := istioRule("zoned")
	zone.Spec.TrafficPolicy.LoadBalancer.ZoneAwareLbSetting = &networkingv1.ZoneAwareLoadBalancerSetting{}
	fake := istiofake.NewSimpleClientset(istioRule("checkout"), zone)
	e := NewIstioEdge(&kube.Cluster{Name: "mesh", Istio: fake}, "shop")
	one := []Share{{Cluster: "seoul", Datacenter: "kr-1", Weight: 1_000_000}}
	for _, c := range []struct {
		service string
		shares  []Share
		want    string
	}{
		{"cart", one, "cluster mesh: destinationrule shop/cart: not found"},
		{"zoned", one, "cluster mesh: destinationrule shop/zoned: it has a zoneAwareLbSetting"},
		{"checkout", []Share{{Cluster: "seoul", Weight: 1_000_000}}, "cluster seoul has a share but no datacenter"},
		{"checkout", []Share{{Cluster: "seoul", Datacenter: "kr-1", Weight: -1}}, "cluster seoul has a negative share"},
		{"checkout", []Share{{Cluster: "seoul", Datacenter: "kr-*", Weight: 1}}, "without wildcards"},
		{"checkout", []Share{{Cluster: "seoul", Datacenter: "kr-1"}}, "no cluster has a share"},
		{"checkout", nil, "no cluster has a share"},
	} {
		err := e.Apply(ctx, c.service, c.shares)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %v: %v, want %q", c.service, c.shares, err, c.want)
		}
	}
	if n := updates(fake); n != 0 {
		t.Errorf("refused splits wrote %d times", n)
	}
	// The namespace defaults like the rest of Pave's Kubernetes seams.
	fake = istiofake.NewSimpleClientset(&istioapi.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: "default"}})
	if err := NewIstioEdge(&kube.Cluster{Name: "mesh", Istio: fake}, "").Apply(ctx, "checkout", one); err != nil {
		t.Errorf("default namespace: %v", err)
	}
}

func TestIstioEdgePercentsLargestRemainder(t *testing.T) {
	for _, c := range []struct {
		name   string
		shares []Share
		want   map[string]uint32
	}{
		{"thirds", []Share{{Cluster: "a", Datacenter: "kr-1", Weight: 333_334}, {Cluster: "b", Datacenter: "kr-2", Weight: 333_333}, {Cluster: "c", Datacenter: "jp-1", Weight: 333_333}},
			map[string]uint32{"kr-1/*": 34, "kr-2/*": 33, "jp-1/*": 33}},
		// 0.1% rounds to nothing: Istio takes no weight of 0, so it is left out.
		{"a sliver", []Share{{Cluster: "a", Datacenter: "kr-1", Weight: 999_000}, {Cluster: "b", Datacenter: "kr-2", Weight: 1_000}},
			map[string]uint32{"kr-1/*": 100}},
		// The point goes to the larger remainder, not the first listed.
		{"remainders", []Share{{Cluster: "a", Datacenter: "kr-1", Weight: 101_000}, {Cluster: "b", Datacenter: "kr-2", Weight: 898_000}, {Cluster: "c", Datacenter: "jp-1", Weight: 1_000}},
			map[string]uint32{"kr-1/*": 10, "kr-2/*": 90}},
		// Two clusters in one datacenter add up.
		{"same datacenter", []Share{{Cluster: "a", Datacenter: "kr-1", Weight: 250_000}, {Cluster: "b", Datacenter: "kr-1", Weight: 250_000}, {Cluster: "c", Datacenter: "jp-1", Weight: 500_000}},
			map[string]uint32{"kr-1/*": 50, "jp-1/*": 50}},
		// Shares that do not add to the whole are scaled to it.
		{"partial", []Share{{Cluster: "a", Datacenter: "kr-1", Weight: 300}, {Cluster: "b", Datacenter: "us-east1/us-east1-b", Weight: 100}},
			map[string]uint32{"kr-1/*": 75, "us-east1/us-east1-b/*": 25}},
	} {
		got := percents(c.shares)
		var sum uint32
		for _, p := range got {
			sum += p
		}
		if sum != 100 || len(got) != len(c.want) {
			t.Errorf("%s: %v sums to %d, want %v", c.name, got, sum, c.want)
			continue
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("%s: %v, want %v", c.name, got, c.want)
			}
		}
	}
}
