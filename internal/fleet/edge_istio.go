package fleet

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingv1 "istio.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/pave-platform/pave/internal/kube"
	"github.com/pave-platform/pave/internal/traffic"
)

// IstioEdge splits a service between the clusters of one Istio mesh that
// spans them, with the DestinationRule's locality load balancing: traffic
// from anywhere goes to each cluster's datacenter (its locality region) in
// proportion to its share.
type IstioEdge struct {
	Cluster   *kube.Cluster // the cluster holding the mesh's configuration
	Namespace string        // default "default"
}

var _ Edge = IstioEdge{}

// NewIstioEdge returns the edge writing to c's DestinationRules in
// namespace.
func NewIstioEdge(c *kube.Cluster, namespace string) *IstioEdge {
	return &IstioEdge{Cluster: c, Namespace: namespace}
}

// Apply writes the distribution into the service's DestinationRule S,
// keeping every other field:
//
//	trafficPolicy:
//	  loadBalancer:
//	    localityLbSetting:
//	      enabled: true
//	      distribute: [{from: "*", to: {"kr-1/*": 75, "kr-2/*": 25}}]
//
// The same setting goes into every subset- or port-level loadBalancer the
// rule already has, since Istio lets those replace the top-level one.
// Rewriting the same split changes nothing.
func (e IstioEdge) Apply(ctx context.Context, service string, shares []Share) error {
	ns := e.Namespace
	if ns == "" {
		ns = "default"
	}
	obj := fmt.Sprintf("cluster %s: destinationrule %s/%s", e.Cluster.Name, ns, service)
	to, err := distribution(shares)
	if err != nil {
		return fmt.Errorf("%s: %w", obj, err)
	}
	drs := e.Cluster.Istio.NetworkingV1().DestinationRules(ns)
	err = retry.RetryOnConflict(traffic.ConflictBackoff, func() error {
		dr, err := drs.Get(ctx, service, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("not found: the edge only changes the rule the service's manifests create (the scaffold's deploy/base/destinationrule.yaml); apply them in cluster %s first", e.Cluster.Name)
		}
		if err != nil {
			return err
		}
		before := proto.Clone(&dr.Spec)
		if err := setDistribution(&dr.Spec, to); err != nil {
			return err
		}
		if proto.Equal(before, &dr.Spec) {
			return nil
		}
		_, err = drs.Update(ctx, dr, metav1.UpdateOptions{FieldManager: kube.FieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", obj, err)
	}
	return nil
}

// setDistribution puts the locality setting into the rule's load
// balancers.
func setDistribution(spec *networkingv1.DestinationRule, to map[string]uint32) error {
	tp := spec.TrafficPolicy
	if tp == nil {
		tp = &networkingv1.TrafficPolicy{}
		spec.TrafficPolicy = tp
	}
	if tp.LoadBalancer == nil {
		tp.LoadBalancer = &networkingv1.LoadBalancerSettings{}
	}
	lbs := []*networkingv1.LoadBalancerSettings{tp.LoadBalancer}
	for _, p := range tp.PortLevelSettings {
		lbs = append(lbs, p.GetLoadBalancer())
	}
	for _, s := range spec.Subsets {
		lbs = append(lbs, s.GetTrafficPolicy().GetLoadBalancer())
		for _, p := range s.GetTrafficPolicy().GetPortLevelSettings() {
			lbs = append(lbs, p.GetLoadBalancer())
		}
	}
	for _, lb := range lbs {
		// Istio refuses a rule with both; replacing the team's zone-aware
		// setting behind its back would be worse than asking.
		if lb.GetZoneAwareLbSetting() != nil {
			return errors.New("it has a zoneAwareLbSetting, which Istio does not allow beside the localityLbSetting the edge writes: remove it, or use another edge")
		}
	}
	for _, lb := range lbs {
		if lb == nil {
			continue
		}
		// failover and failoverPriority go: Istio allows one of them or
		// distribute, and distribute is what moves the shares.
		lb.LocalityLbSetting = &networkingv1.LocalityLoadBalancerSetting{
			Enabled:    wrapperspb.Bool(true),
			Distribute: []*networkingv1.LocalityLoadBalancerSetting_Distribute{{From: "*", To: to}},
		}
	}
	if tp.OutlierDetection == nil {
		// Istio applies locality weights only with outlier detection, so
		// there must be one; a team's own is kept as it is. This one ejects
		// an endpoint only for failures to reach it (a dead cluster),
		// never for the 5xx it answers: a canary's errors must reach the
		// judges, not be hidden by ejecting it.
		tp.OutlierDetection = &networkingv1.OutlierDetection{
			SplitExternalLocalOriginErrors: true,
			ConsecutiveLocalOriginFailures: wrapperspb.UInt32(5),
			Consecutive_5XxErrors:          wrapperspb.UInt32(0),
			Interval:                       durationpb.New(10e9),
			BaseEjectionTime:               durationpb.New(30e9),
		}
	}
	return nil
}

// distribution checks the shares and turns them into Istio's weights.
func distribution(shares []Share) (map[string]uint32, error) {
	var total int64
	for _, s := range shares {
		if s.Weight < 0 {
			return nil, fmt.Errorf("cluster %s has a negative share %d", s.Cluster, s.Weight)
		}
		if s.Weight == 0 {
			continue
		}
		total += s.Weight
		dc := strings.Trim(s.Datacenter, "/")
		if dc == "" {
			return nil, fmt.Errorf("cluster %s has a share but no datacenter: Istio places endpoints by locality, so register the cluster with --datacenter set to its nodes' topology.kubernetes.io/region", s.Cluster)
		}
		if strings.Contains(dc, "*") {
			return nil, fmt.Errorf("cluster %s: datacenter %q: want a locality region (or region/zone) without wildcards", s.Cluster, s.Datacenter)
		}
	}
	if total == 0 {
		return nil, errors.New("no cluster has a share: keep at least one cluster in service")
	}
	return percents(shares), nil
}

// percents turns shares into Istio's weights: "<datacenter>/*" (the
// datacenter is the locality region, or region/zone) to whole percents
// that sum to 100, as Istio requires. Each datacenter's share is scaled by
// the shares' total and rounded down, and the points still missing go to
// the largest remainders (ties to the first listed). A datacenter left at
// 0 is omitted: Istio refuses a weight of 0, and sends nothing to a
// locality it does not list. Clusters in one datacenter add up.
func percents(shares []Share) map[string]uint32 {
	sums := map[string]int64{}
	var order []string
	var total int64
	for _, s := range shares {
		if s.Weight <= 0 {
			continue
		}
		key := strings.Trim(s.Datacenter, "/") + "/*"
		if _, ok := sums[key]; !ok {
			order = append(order, key)
		}
		sums[key] += s.Weight
		total += s.Weight
	}
	if total == 0 {
		return nil
	}
	type part struct {
		key      string
		pct, rem int64
	}
	parts := make([]part, len(order))
	var given int64
	for i, k := range order {
		parts[i] = part{key: k, pct: sums[k] * 100 / total, rem: sums[k] * 100 % total}
		given += parts[i].pct
	}
	// Each datacenter lost less than one point to rounding down, so fewer
	// points are missing than there are datacenters.
	sort.SliceStable(parts, func(i, j int) bool { return parts[i].rem > parts[j].rem })
	for i := 0; given < 100; i++ {
		parts[i].pct++
		given++
	}
	out := make(map[string]uint32, len(parts))
	for _, p := range parts {
		if p.pct > 0 {
			out[p.key] = uint32(p.pct)
		}
	}
	return out
}
