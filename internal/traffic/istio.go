package traffic

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	networkingv1 "istio.io/api/networking/v1"
	istioapi "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/pave-platform/pave/internal/kube"
	"github.com/pave-platform/pave/internal/state"
)

// PrimaryRoute names the VirtualService HTTP route whose weights Pave
// drives (the scaffold's deploy/base/virtualservice.yaml names it so).
const PrimaryRoute = "primary"

// istioManifests is where the scaffold ships the objects this router needs.
const istioManifests = "deploy/base"

// IstioRouter splits a service's traffic with Istio: the DestinationRule
// SERVICE gets a subset per version (pods labelled version=V) and the
// route named "primary" of the VirtualService SERVICE gets one destination
// per version with its weight in parts per million. Istio reads weights as
// relative since 1.13 (istio/api#2192), so 100 : 999900 is 0.01% exactly,
// a resolution Flagger's and Argo Rollouts' 0–100 cannot express.
//
// VirtualService routes are one list without list-type in the CRD's
// schema, which server-side apply treats as atomic: applying Pave's routes
// would take ownership of the whole list and drop the team's. So the router
// reads, changes only what it owns (the primary route's destinations and
// the pave-header-* routes) and writes back with the resourceVersion it
// read, retrying on a conflict. Every other route and field stays as the
// team wrote it (as far as the compiled Istio API knows the fields: the
// typed client drops fields newer than istio.io/api).
type IstioRouter struct {
	c  *kube.Cluster
	ns string
}

var _ Router = (*IstioRouter)(nil)

func (r *IstioRouter) obj(kind, name string) string { return fmt.Sprintf("%s %s/%s", kind, r.ns, name) }

// SetWeights checks the VirtualService before writing anything, then adds
// the missing subsets, then rewrites the routes in one update. A route
// never names a subset that does not exist yet, and the weights live in
// one object, so the traffic changes at once or not at all. If the route
// update fails after the subsets were added, those subsets select pods but
// no route sends them traffic: harmless, and the next attempt reuses them.
func (r *IstioRouter) SetWeights(ctx context.Context, service string, w Weights) error {
	if err := ValidName("service", service); err != nil {
		return err
	}
	if err := w.Validate(); err != nil {
		return err
	}
	vss := r.c.Istio.NetworkingV1().VirtualServices(r.ns)
	drs := r.c.Istio.NetworkingV1().DestinationRules(r.ns)
	vsObj, drObj := r.obj("virtualservice", service), r.obj("destinationrule", service)

	vs, err := vss.Get(ctx, service, metav1.GetOptions{})
	if err != nil {
		return kubeError(r.c.Name, "read", vsObj, istioManifests, err)
	}
	if _, err := r.routes(service, vs, w); err != nil {
		return err
	}

	err = retry.RetryOnConflict(ConflictBackoff, func() error {
		dr, err := drs.Get(ctx, service, metav1.GetOptions{})
		if err != nil {
			return kubeError(r.c.Name, "read", drObj, istioManifests, err)
		}
		add, err := r.missingSubsets(service, dr, w)
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

	fresh := true // the first attempt reuses the read above
	return retry.RetryOnConflict(ConflictBackoff, func() error {
		if !fresh {
			var err error
			if vs, err = vss.Get(ctx, service, metav1.GetOptions{}); err != nil {
				return kubeError(r.c.Name, "read", vsObj, istioManifests, err)
			}
		}
		fresh = false
		http, err := r.routes(service, vs, w)
		if err != nil {
			return err
		}
		if sameRoutes(http, vs.Spec.Http) {
			return nil // already so: no write, no new resourceVersion
		}
		vs.Spec.Http = http
		if _, err := vss.Update(ctx, vs, metav1.UpdateOptions{FieldManager: kube.FieldManager}); err != nil {
			return kubeError(r.c.Name, "update", vsObj, istioManifests, err)
		}
		return nil
	})
}

// missingSubsets returns the version subsets the DestinationRule lacks. A
// subset named after a version that selects something else is the team's:
// taking it over would move whatever they pinned to it, so it is refused.
func (r *IstioRouter) missingSubsets(service string, dr *istioapi.DestinationRule, w Weights) ([]*networkingv1.Subset, error) {
	have := map[string]*networkingv1.Subset{}
	for _, s := range dr.Spec.Subsets {
		if s != nil {
			have[s.Name] = s
		}
	}
	var add []*networkingv1.Subset
	for _, v := range w.Versions() {
		s := have[v]
		switch {
		case s == nil:
			add = append(add, &networkingv1.Subset{Name: v, Labels: map[string]string{"version": v}})
		case s.Labels["version"] != v:
			return nil, fmt.Errorf("cluster %s: %s has a subset %q selecting %v, not version=%s: Pave routes version %s through the subset of that name; rename the subset or release under another version name",
				r.c.Name, r.obj("destinationrule", service), v, s.Labels, v, v)
		}
	}
	return add, nil
}

// routes returns the VirtualService's HTTP routes with w applied: one
// tester route per version first, then every route that is not Pave's in
// its order, the primary one with new destinations. vs is not changed.
func (r *IstioRouter) routes(service string, vs *istioapi.VirtualService, w Weights) ([]*networkingv1.HTTPRoute, error) {
	primary, err := r.primary(service, vs)
	if err != nil {
		return nil, err
	}
	// New destinations copy the first one's host and port: the scaffold's
	// host is the short name SERVICE, a team may have written the FQDN.
	tmpl := &networkingv1.Destination{Host: service}
	old := map[string]*networkingv1.HTTPRouteDestination{}
	for i, d := range primary.Route {
		if d.GetDestination() == nil {
			continue
		}
		if i == 0 {
			tmpl = proto.Clone(d.Destination).(*networkingv1.Destination)
		}
		if _, dup := old[d.Destination.Subset]; !dup {
			old[d.Destination.Subset] = d
		}
	}
	dest := func(v string) *networkingv1.Destination {
		d := proto.Clone(tmpl).(*networkingv1.Destination)
		d.Subset = v
		return d
	}

	p := proto.Clone(primary).(*networkingv1.HTTPRoute)
	p.Route = nil
	for _, v := range w.Versions() {
		if w[v] == 0 {
			continue // Validate guarantees one version has weight
		}
		d := &networkingv1.HTTPRouteDestination{Destination: dest(v)}
		if o := old[v]; o != nil {
			d = proto.Clone(o).(*networkingv1.HTTPRouteDestination) // keeps its header rules
		}
		d.Weight = int32(w[v]) // ≤ Total, well inside int32
		p.Route = append(p.Route, d)
	}

	// A tester route is the primary route pinned to one version: the same
	// matches plus the header, the same timeout and retries.
	out := make([]*networkingv1.HTTPRoute, 0, len(vs.Spec.Http)+len(w))
	for _, v := range w.Versions() {
		h := proto.Clone(p).(*networkingv1.HTTPRoute)
		h.Name = HeaderRoutePrefix + v
		h.Match = headerMatches(primary.Match, v)
		h.Route = []*networkingv1.HTTPRouteDestination{{Destination: dest(v)}}
		h.Mirror, h.MirrorPercentage = nil, nil // a tester's requests are not a shadow step's
		out = append(out, h)
	}
	for _, h := range vs.Spec.Http {
		switch {
		case h == primary:
			out = append(out, p)
		case h == nil || strings.HasPrefix(h.Name, HeaderRoutePrefix):
		default:
			out = append(out, h)
		}
	}
	return out, nil
}

func headerMatches(ms []*networkingv1.HTTPMatchRequest, v string) []*networkingv1.HTTPMatchRequest {
	exact := &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Exact{Exact: v}}
	if len(ms) == 0 {
		return []*networkingv1.HTTPMatchRequest{{Headers: map[string]*networkingv1.StringMatch{VersionHeader: exact}}}
	}
	out := make([]*networkingv1.HTTPMatchRequest, 0, len(ms))
	for _, m := range ms {
		c := proto.Clone(m).(*networkingv1.HTTPMatchRequest)
		if c.Headers == nil {
			c.Headers = map[string]*networkingv1.StringMatch{}
		}
		c.Headers[VersionHeader] = proto.Clone(exact).(*networkingv1.StringMatch)
		out = append(out, c)
	}
	return out
}

func sameRoutes(a, b []*networkingv1.HTTPRoute) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// primary finds the route Pave drives, or says which routes there are.
func (r *IstioRouter) primary(service string, vs *istioapi.VirtualService) (*networkingv1.HTTPRoute, error) {
	var seen []string
	for i, h := range vs.Spec.Http {
		if h == nil {
			continue
		}
		if h.Name == PrimaryRoute {
			return h, nil
		}
		if h.Name == "" {
			seen = append(seen, fmt.Sprintf("unnamed route %d", i+1))
		} else {
			seen = append(seen, fmt.Sprintf("%q", h.Name))
		}
	}
	return nil, fmt.Errorf("cluster %s: %s has no HTTP route named %q (it has %s): Pave drives the weights of the route named %s; name the route that carries the service's traffic so, as the scaffold's %s/virtualservice.yaml does",
		r.c.Name, r.obj("virtualservice", service), PrimaryRoute, names(seen), PrimaryRoute, istioManifests)
}

// Weights reads the primary route's destinations as parts per million;
// weights a person wrote (0–100) are scaled. A route whose subsets are not
// per-version subsets (the scaffold's stable/canary before any release)
// has no version weights yet: that is reported as state.ErrNotFound, and
// the first release takes the route over.
func (r *IstioRouter) Weights(ctx context.Context, service string) (Weights, error) {
	if err := ValidName("service", service); err != nil {
		return nil, err
	}
	vsObj := r.obj("virtualservice", service)
	vs, err := r.c.Istio.NetworkingV1().VirtualServices(r.ns).Get(ctx, service, metav1.GetOptions{})
	if err != nil {
		return nil, kubeError(r.c.Name, "read", vsObj, istioManifests, err)
	}
	primary, err := r.primary(service, vs)
	if err != nil {
		return nil, err
	}
	dr, err := r.c.Istio.NetworkingV1().DestinationRules(r.ns).Get(ctx, service, metav1.GetOptions{})
	if err != nil {
		return nil, kubeError(r.c.Name, "read", r.obj("destinationrule", service), istioManifests, err)
	}
	versionSubset := map[string]bool{}
	for _, s := range dr.Spec.Subsets {
		if s != nil && s.Labels["version"] == s.Name {
			versionSubset[s.Name] = true
		}
	}
	if len(primary.Route) == 0 {
		return nil, fmt.Errorf("cluster %s: %s: route %s has no destinations: no version weights yet: %w", r.c.Name, vsObj, PrimaryRoute, state.ErrNotFound)
	}
	raw := map[string]int64{}
	for _, d := range primary.Route {
		sub := d.GetDestination().GetSubset()
		if !versionSubset[sub] {
			return nil, fmt.Errorf("cluster %s: %s: route %s sends traffic to subset %q, which is not a version's subset (labels version=NAME): no version weights yet: %w",
				r.c.Name, vsObj, PrimaryRoute, sub, state.ErrNotFound)
		}
		wt := int64(d.Weight)
		if len(primary.Route) == 1 && wt == 0 {
			wt = 1 // a lone destination without weight takes everything
		}
		raw[sub] += wt
	}
	w, err := toPPM(raw)
	if err != nil {
		if errors.Is(err, errAllZero) {
			err = fmt.Errorf("%v: no version weights yet: %w", err, state.ErrNotFound)
		}
		return nil, fmt.Errorf("cluster %s: %s: route %s: %w", r.c.Name, vsObj, PrimaryRoute, err)
	}
	return w, nil
}
