package fleet

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingv1 "istio.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/pave-platform/pave/internal/kube"
	"github.com/pave-platform/pave/internal/traffic"
)

// IstioEdge splits a service between clusters of one Istio mesh that spans
// them, with the DestinationRule's locality load balancing: traffic from
// anywhere goes to each cluster's datacenter (its locality region) in
// proportion to its share. Istio wants whole percents summing to 100, so
// shares are rounded by largest remainder; a cluster at 0 is left out.
// Locality load balancing only acts with outlier detection, which is added
// (and only added) when the rule has none.
type IstioEdge struct {
	Cluster   *kube.Cluster // the cluster holding the mesh's configuration
	Namespace string
}

// Apply writes the distribution into the service's DestinationRule, keeping
// every other field.
func (e IstioEdge) Apply(ctx context.Context, service string, shares []Share) error {
	to := percents(shares)
	if len(to) == 0 {
		return fmt.Errorf("cluster %s: destinationrule %s/%s: no cluster has a share", e.Cluster.Name, e.Namespace, service)
	}
	drs := e.Cluster.Istio.NetworkingV1().DestinationRules(e.Namespace)
	err := retry.RetryOnConflict(traffic.ConflictBackoff, func() error {
		dr, err := drs.Get(ctx, service, metav1.GetOptions{})
		if err != nil {
			return err
		}
		tp := dr.Spec.TrafficPolicy
		if tp == nil {
			tp = &networkingv1.TrafficPolicy{}
			dr.Spec.TrafficPolicy = tp
		}
		if tp.LoadBalancer == nil {
			tp.LoadBalancer = &networkingv1.LoadBalancerSettings{}
		}
		tp.LoadBalancer.LocalityLbSetting = &networkingv1.LocalityLoadBalancerSetting{
			Enabled:    wrapperspb.Bool(true),
			Distribute: []*networkingv1.LocalityLoadBalancerSetting_Distribute{{From: "*", To: to}},
		}
		if tp.OutlierDetection == nil {
			tp.OutlierDetection = &networkingv1.OutlierDetection{Consecutive_5XxErrors: wrapperspb.UInt32(5),
				Interval: durationpb.New(10e9), BaseEjectionTime: durationpb.New(30e9)}
		}
		_, err = drs.Update(ctx, dr, metav1.UpdateOptions{FieldManager: kube.FieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster %s: destinationrule %s/%s: %w", e.Cluster.Name, e.Namespace, service, err)
	}
	return nil
}

// percents turns shares (parts per million) into whole percents by
// datacenter that sum to 100.
func percents(shares []Share) map[string]uint32 {
	ws := make([]int64, len(shares))
	for i, s := range shares {
		ws[i] = max(s.Weight, 0)
	}
	out := map[string]uint32{}
	for i, p := range traffic.Apportion(ws, 100) {
		if p == 0 {
			continue
		}
		dc := shares[i].Datacenter
		if dc == "" {
			dc = shares[i].Cluster
		}
		out[dc+"/*"] += uint32(p)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
