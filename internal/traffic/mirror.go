package traffic

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"
	networkingv1 "istio.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/pave-platform/pave/internal/gateway"
	"github.com/pave-platform/pave/internal/kube"
	"github.com/pave-platform/pave/internal/shadow"
)

// Mirror asks a router to copy a share of the stable version's requests
// to the canary during a release's shadow step; the canary's answers go
// to no user.
type Mirror struct {
	Stable string `json:"stable"`
	Canary string `json:"canary"`
	// Share of stable's mirrorable requests, in parts per million (0: all).
	Share    int64           `json:"share,omitempty"`
	Settings shadow.Settings `json:"settings"`
}

// Mirrorer is a router that can mirror; SetMirror(nil) turns it off.
type Mirrorer interface {
	SetMirror(ctx context.Context, service string, m *Mirror) error
}

// mirrorGateway is the part of the embedded gateway that mirrors.
type mirrorGateway interface {
	SetMirror(service string, m *gateway.Mirror) error
}

var _ Mirrorer = (*GatewayRouter)(nil)

// SetMirror turns the embedded gateway's mirror of a service on or off.
// The mirror lives in the data plane only: a release's reconcile loop sets
// it again at every pass while it wants it, so a restarted gateway
// mirrors again within a second.
func (r *GatewayRouter) SetMirror(_ context.Context, service string, m *Mirror) error {
	mg, ok := r.gw.(mirrorGateway)
	if !ok {
		return fmt.Errorf("this gateway cannot mirror requests")
	}
	if m == nil {
		return mg.SetMirror(service, nil)
	}
	return mg.SetMirror(service, &gateway.Mirror{Stable: m.Stable, Canary: m.Canary, Share: m.Share, Settings: m.Settings})
}

var _ Mirrorer = (*IstioRouter)(nil)

// SetMirror sets the primary route's mirror and mirrorPercentage to the
// canary's subset (adding the subset when missing), or removes both.
// Envoy sends the copies and discards their answers; Istio records them
// in the canary's metrics (its Host carries a -shadow suffix), which is
// what the shadow step judges on Kubernetes: Envoy keeps no answer
// bodies, so the response comparison is the embedded gateway's alone.
// Safe routes are not mirrored here unless the team's route matches them.
func (r *IstioRouter) SetMirror(ctx context.Context, service string, m *Mirror) error {
	if err := ValidName("service", service); err != nil {
		return err
	}
	vss := r.c.Istio.NetworkingV1().VirtualServices(r.ns)
	drs := r.c.Istio.NetworkingV1().DestinationRules(r.ns)
	vsObj, drObj := r.obj("virtualservice", service), r.obj("destinationrule", service)
	if m != nil {
		if err := ValidName("version", m.Canary); err != nil {
			return err
		}
		err := retry.RetryOnConflict(ConflictBackoff, func() error {
			dr, err := drs.Get(ctx, service, metav1.GetOptions{})
			if err != nil {
				return kubeError(r.c.Name, "read", drObj, istioManifests, err)
			}
			add, err := r.missingSubsets(service, dr, Weights{m.Canary: Total})
			if err != nil || len(add) == 0 {
				return err
			}
			dr.Spec.Subsets = append(dr.Spec.Subsets, add...)
			if _, err := drs.Update(ctx, dr, metav1.UpdateOptions{FieldManager: kube.FieldManager}); err != nil {
				return kubeError(r.c.Name, "update", drObj, istioManifests, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return retry.RetryOnConflict(ConflictBackoff, func() error {
		vs, err := vss.Get(ctx, service, metav1.GetOptions{})
		if err != nil {
			return kubeError(r.c.Name, "read", vsObj, istioManifests, err)
		}
		primary, err := r.primary(service, vs)
		if err != nil {
			return err
		}
		var dest *networkingv1.Destination
		var pct *networkingv1.Percent
		if m != nil {
			dest = &networkingv1.Destination{Host: service}
			for _, d := range primary.Route {
				if d.GetDestination() != nil {
					dest = proto.Clone(d.Destination).(*networkingv1.Destination)
					break
				}
			}
			dest.Subset = m.Canary
			share := m.Share
			if share <= 0 || share > Total {
				share = Total
			}
			pct = &networkingv1.Percent{Value: 100 * float64(share) / float64(Total)}
		}
		if proto.Equal(primary.Mirror, dest) && proto.Equal(primary.MirrorPercentage, pct) {
			return nil
		}
		primary.Mirror, primary.MirrorPercentage = dest, pct
		if _, err := vss.Update(ctx, vs, metav1.UpdateOptions{FieldManager: kube.FieldManager}); err != nil {
			return kubeError(r.c.Name, "update", vsObj, istioManifests, err)
		}
		return nil
	})
}
