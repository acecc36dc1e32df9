package traffic

import (
	"context"
	"fmt"
	"strings"

	networkingv1 "istio.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/pave-platform/pave/internal/kube"
	"github.com/pave-platform/pave/internal/state"
)

// PrimaryRoute is the VirtualService HTTP route whose weights Pave drives
// (the scaffold's manifests name it so).
const PrimaryRoute = "primary"

// IstioRouter splits a service's traffic with Istio: the DestinationRule
// SERVICE gets a subset per version (pods labelled version=V) and the
// route named "primary" of the VirtualService SERVICE gets one destination
// per version with its weight in parts per million. Istio reads weights as
// relative since 1.13, so 100 : 999900 is 0.01% exactly, a resolution
// Flagger's and Argo Rollouts' 0–100 cannot express.
//
// VirtualService routes are one atomic list in the CRD's schema, so
// server-side apply would take the whole list; the router reads, changes
// only what it owns (the primary route's destinations and its pave-header-*
// routes) and writes back with the resourceVersion it read, retrying on a
// conflict. Every other route and field stays as the team wrote it.
type IstioRouter struct {
	c  *kube.Cluster
	ns string
}

var _ Router = (*IstioRouter)(nil)

func (r *IstioRouter) obj(kind, name string) string { return fmt.Sprintf("%s %s/%s", kind, r.ns, name) }

// SetWeights writes the subsets first, so a route never names a subset
// that does not exist yet, then the routes in one update: the traffic
// changes at once or not at all. Subsets left over from a failed route
// update select pods but carry no traffic.
func (r *IstioRouter) SetWeights(ctx context.Context, service string, w Weights) error {
	if err := w.Validate(); err != nil {
		return err
	}
	drs := r.c.Istio.NetworkingV1().DestinationRules(r.ns)
	err := retry.RetryOnConflict(ConflictBackoff, func() error {
		dr, err := drs.Get(ctx, service, metav1.GetOptions{})
		if err != nil {
			return kubeError(r.c.Name, "read", r.obj("destinationrule", service), err)
		}
		have := map[string]bool{}
		for _, s := range dr.Spec.Subsets {
			if s != nil {
				have[s.Name] = true
			}
		}
		changed := false
		for _, v := range w.Versions() {
			if !have[v] {
				dr.Spec.Subsets = append(dr.Spec.Subsets, &networkingv1.Subset{Name: v, Labels: map[string]string{"version": v}})
				changed = true
			}
		}
		if !changed {
			return nil
		}
		_, err = drs.Update(ctx, dr, metav1.UpdateOptions{FieldManager: kube.FieldManager})
		return err
	})
	if err != nil {
		return kubeError(r.c.Name, "update", r.obj("destinationrule", service), err)
	}
	vss := r.c.Istio.NetworkingV1().VirtualServices(r.ns)
	err = retry.RetryOnConflict(ConflictBackoff, func() error {
		vs, err := vss.Get(ctx, service, metav1.GetOptions{})
		if err != nil {
			return err
		}
		primary, err := r.primary(service, vs.Spec.Http)
		if err != nil {
			return err
		}
		host := service
		if len(primary.Route) > 0 && primary.Route[0].GetDestination().GetHost() != "" {
			host = primary.Route[0].GetDestination().GetHost()
		}
		primary.Route = nil
		for _, v := range w.Versions() {
			if w[v] > 0 {
				primary.Route = append(primary.Route, &networkingv1.HTTPRouteDestination{
					Destination: &networkingv1.Destination{Host: host, Subset: v}, Weight: int32(w[v])})
			}
		}
		// Tester routes first, one per version of the split, then every
		// route that is not Pave's in its original order.
		var routes []*networkingv1.HTTPRoute
		for _, v := range w.Versions() {
			routes = append(routes, &networkingv1.HTTPRoute{Name: HeaderRoutePrefix + v,
				Match: []*networkingv1.HTTPMatchRequest{{Headers: map[string]*networkingv1.StringMatch{
					VersionHeader: {MatchType: &networkingv1.StringMatch_Exact{Exact: v}}}}},
				Route: []*networkingv1.HTTPRouteDestination{{Destination: &networkingv1.Destination{Host: host, Subset: v}}}})
		}
		for _, h := range vs.Spec.Http {
			if h != nil && !strings.HasPrefix(h.Name, HeaderRoutePrefix) {
				routes = append(routes, h)
			}
		}
		vs.Spec.Http = routes
		_, err = vss.Update(ctx, vs, metav1.UpdateOptions{FieldManager: kube.FieldManager})
		return err
	})
	if err != nil {
		return kubeError(r.c.Name, "update", r.obj("virtualservice", service), err)
	}
	return nil
}

func (r *IstioRouter) primary(service string, routes []*networkingv1.HTTPRoute) (*networkingv1.HTTPRoute, error) {
	var seen []string
	for _, h := range routes {
		if h == nil {
			continue
		}
		if h.Name == PrimaryRoute {
			return h, nil
		}
		seen = append(seen, fmt.Sprintf("%q", h.Name))
	}
	return nil, fmt.Errorf("cluster %s: %s has no HTTP route named %q (it has %s): Pave drives the weights of that route; name the route that carries the service's traffic %q",
		r.c.Name, r.obj("virtualservice", service), PrimaryRoute, names(seen), PrimaryRoute)
}

// Weights reads the primary route's destinations. A route whose subsets
// are not per-version subsets (the scaffold's stable/canary before any
// release) has no version weights yet: that is reported as not found, so
// the first release takes the route over.
func (r *IstioRouter) Weights(ctx context.Context, service string) (Weights, error) {
	vs, err := r.c.Istio.NetworkingV1().VirtualServices(r.ns).Get(ctx, service, metav1.GetOptions{})
	if err != nil {
		return nil, kubeError(r.c.Name, "read", r.obj("virtualservice", service), err)
	}
	primary, err := r.primary(service, vs.Spec.Http)
	if err != nil {
		return nil, err
	}
	dr, err := r.c.Istio.NetworkingV1().DestinationRules(r.ns).Get(ctx, service, metav1.GetOptions{})
	if err != nil {
		return nil, kubeError(r.c.Name, "read", r.obj("destinationrule", service), err)
	}
	versionSubset := map[string]bool{}
	for _, s := range dr.Spec.Subsets {
		if s != nil && s.Labels["version"] == s.Name {
			versionSubset[s.Name] = true
		}
	}
	raw := map[string]int64{}
	for _, d := range primary.Route {
		sub := d.GetDestination().GetSubset()
		if !versionSubset[sub] {
			return nil, fmt.Errorf("cluster %s: %s routes to subset %q, not a version: no version weights yet: %w", r.c.Name, r.obj("virtualservice", service), sub, state.ErrNotFound)
		}
		wt := int64(d.Weight)
		if len(primary.Route) == 1 && wt == 0 {
			wt = 1 // a lone destination without weight takes everything
		}
		raw[sub] += wt
	}
	w, err := toPPM(raw)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %s: route %q: %v: %w", r.c.Name, r.obj("virtualservice", service), PrimaryRoute, err, state.ErrNotFound)
	}
	return w, nil
}
