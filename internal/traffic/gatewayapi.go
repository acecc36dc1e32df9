package traffic

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pave-platform/pave/internal/kube"
	"github.com/pave-platform/pave/internal/state"
)

// gatewayManifests is where the scaffold ships the HTTPRoute.
const gatewayManifests = "deploy/gateway-api"

// GatewayAPIRouter splits a service's traffic with the Gateway API
// HTTPRoute SERVICE. Pave owns the backendRefs of its primary rule: the
// rule named "primary" if there is one, else the first rule that matches
// every request and sends it to Services named SERVICE-* (the scaffold's
// SERVICE-stable / SERVICE-canary rule). They become one backendRef per
// version, to the per-version Service SERVICE-VERSION the Kubernetes
// target creates, weighted in parts per million: the API allows weights up
// to 1,000,000, so even 0.0001% is exact. Rules pave-header-VERSION, placed
// first, send X-Pave-Version: V to V.
//
// The rules are an atomic list in the CRD's schema, so, as for Istio,
// server-side apply would take the whole list: the router reads, changes
// its part, and writes back with the resourceVersion it read, retrying on a
// conflict. Other rules and fields stay as the team wrote them.
type GatewayAPIRouter struct {
	c  *kube.Cluster
	ns string
}

var _ Router = (*GatewayAPIRouter)(nil)

func (r *GatewayAPIRouter) obj(name string) string { return fmt.Sprintf("httproute %s/%s", r.ns, name) }

// SetWeights rewrites the primary rule's backendRefs and the tester rules
// in one update: the traffic changes at once or not at all.
func (r *GatewayAPIRouter) SetWeights(ctx context.Context, service string, w Weights) error {
	if err := ValidName("service", service); err != nil {
		return err
	}
	if err := w.Validate(); err != nil {
		return err
	}
	routes := r.c.Gateway.GatewayV1().HTTPRoutes(r.ns)
	return retry.RetryOnConflict(ConflictBackoff, func() error {
		hr, err := routes.Get(ctx, service, metav1.GetOptions{})
		if err != nil {
			return kubeError(r.c.Name, "read", r.obj(service), gatewayManifests, err)
		}
		rules, err := r.rules(service, hr, w)
		if err != nil {
			return err
		}
		if equality.Semantic.DeepEqual(rules, hr.Spec.Rules) {
			return nil
		}
		hr.Spec.Rules = rules
		if _, err := routes.Update(ctx, hr, metav1.UpdateOptions{FieldManager: kube.FieldManager}); err != nil {
			return kubeError(r.c.Name, "update", r.obj(service), gatewayManifests, err)
		}
		return nil
	})
}

// ruleNameRE is the Gateway API's pattern for rule names.
var ruleNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// rules returns the HTTPRoute's rules with w applied; hr is not changed.
func (r *GatewayAPIRouter) rules(service string, hr *gatewayv1.HTTPRoute, w Weights) ([]gatewayv1.HTTPRouteRule, error) {
	i, err := r.primary(service, hr)
	if err != nil {
		return nil, err
	}
	orig := hr.Spec.Rules[i]
	// New backendRefs copy the first one's port (and the group and kind
	// the API server defaulted, so a second write finds nothing to do).
	port := gatewayv1.PortNumber(80)
	tmpl := gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{Port: &port}}}
	old := map[string]gatewayv1.HTTPBackendRef{}
	for j, b := range orig.BackendRefs {
		if j == 0 {
			tmpl = *b.DeepCopy()
			tmpl.Filters = nil
		}
		if _, dup := old[string(b.Name)]; !dup {
			old[string(b.Name)] = b
		}
	}
	ref := func(v string, weight int32) gatewayv1.HTTPBackendRef {
		b := *tmpl.DeepCopy()
		if o, ok := old[service+"-"+v]; ok {
			b = *o.DeepCopy() // keeps its filters
		}
		b.Name = gatewayv1.ObjectName(service + "-" + v)
		b.Weight = &weight
		return b
	}

	primary := *orig.DeepCopy()
	primary.BackendRefs = nil
	for _, v := range w.Versions() {
		if w[v] > 0 { // Validate guarantees one
			primary.BackendRefs = append(primary.BackendRefs, ref(v, int32(w[v])))
		}
	}

	// A tester rule is the primary rule pinned to one version: the same
	// matches plus the header, the same filters and timeouts.
	out := make([]gatewayv1.HTTPRouteRule, 0, len(hr.Spec.Rules)+len(w))
	taken := map[string]bool{}
	for _, rule := range hr.Spec.Rules {
		if rule.Name != nil && !isPaveRule(rule) {
			taken[string(*rule.Name)] = true
		}
	}
	for _, v := range w.Versions() {
		h := *primary.DeepCopy()
		h.Name = nil
		// Rule names are optional and stricter than version names; a rule
		// without one is still found by its header match.
		if n := HeaderRoutePrefix + strings.ReplaceAll(v, "_", "-"); ruleNameRE.MatchString(n) && !taken[n] {
			sn := gatewayv1.SectionName(n)
			h.Name, taken[n] = &sn, true
		}
		h.Matches = gatewayHeaderMatches(orig.Matches, v)
		h.BackendRefs = []gatewayv1.HTTPBackendRef{ref(v, 1)}
		out = append(out, h)
	}
	for j, rule := range hr.Spec.Rules {
		switch {
		case j == i:
			out = append(out, primary)
		case isPaveRule(rule):
		default:
			out = append(out, rule)
		}
	}
	return out, nil
}

// gatewayHeaderMatches adds the version header to each match, spelling out
// what the API server would default (path prefix /, exact header match) so
// that the next read compares equal.
func gatewayHeaderMatches(ms []gatewayv1.HTTPRouteMatch, v string) []gatewayv1.HTTPRouteMatch {
	exact := gatewayv1.HeaderMatchExact
	header := gatewayv1.HTTPHeaderMatch{Type: &exact, Name: VersionHeader, Value: v}
	if len(ms) == 0 {
		ms = []gatewayv1.HTTPRouteMatch{{}}
	}
	out := make([]gatewayv1.HTTPRouteMatch, 0, len(ms))
	for _, m := range ms {
		c := *m.DeepCopy()
		if c.Path == nil {
			prefix, root := gatewayv1.PathMatchPathPrefix, "/"
			c.Path = &gatewayv1.HTTPPathMatch{Type: &prefix, Value: &root}
		}
		c.Headers = append(c.Headers, header)
		out = append(out, c)
	}
	return out
}

// isPaveRule tells Pave's tester rules by name or, if a name could not be
// given, by their match on the version header, which is Pave's.
func isPaveRule(rule gatewayv1.HTTPRouteRule) bool {
	if rule.Name != nil && strings.HasPrefix(string(*rule.Name), HeaderRoutePrefix) {
		return true
	}
	for _, m := range rule.Matches {
		for _, h := range m.Headers {
			if strings.EqualFold(string(h.Name), VersionHeader) {
				return true
			}
		}
	}
	return false
}

// matchesAll: no matches, or the API server's default (path prefix /).
func matchesAll(ms []gatewayv1.HTTPRouteMatch) bool {
	if len(ms) == 0 {
		return true
	}
	if len(ms) != 1 {
		return false
	}
	m := ms[0]
	if len(m.Headers) > 0 || len(m.QueryParams) > 0 || m.Method != nil {
		return false
	}
	p := m.Path
	return p == nil || (p.Type == nil || *p.Type == gatewayv1.PathMatchPathPrefix) && (p.Value == nil || *p.Value == "/")
}

// serviceRefs: every backendRef is a Service SERVICE-* in the route's
// namespace.
func (r *GatewayAPIRouter) serviceRefs(service string, refs []gatewayv1.HTTPBackendRef) bool {
	for _, b := range refs {
		if b.Group != nil && *b.Group != "" || b.Kind != nil && *b.Kind != "Service" ||
			b.Namespace != nil && string(*b.Namespace) != r.ns || !strings.HasPrefix(string(b.Name), service+"-") {
			return false
		}
	}
	return len(refs) > 0
}

// primary finds the rule Pave drives, or says which rules there are.
func (r *GatewayAPIRouter) primary(service string, hr *gatewayv1.HTTPRoute) (int, error) {
	for i, rule := range hr.Spec.Rules {
		if rule.Name != nil && *rule.Name == PrimaryRoute {
			return i, nil
		}
	}
	var seen []string
	for i, rule := range hr.Spec.Rules {
		if isPaveRule(rule) {
			continue
		}
		if matchesAll(rule.Matches) && r.serviceRefs(service, rule.BackendRefs) {
			return i, nil
		}
		var backends []string
		for _, b := range rule.BackendRefs {
			backends = append(backends, string(b.Name))
		}
		label := fmt.Sprintf("rule %d", i+1)
		if rule.Name != nil {
			label = fmt.Sprintf("rule %q", *rule.Name)
		}
		kind := "matches some requests"
		if matchesAll(rule.Matches) {
			kind = "matches every request"
		}
		seen = append(seen, fmt.Sprintf("%s %s, to [%s]", label, kind, strings.Join(backends, " ")))
	}
	return -1, fmt.Errorf("cluster %s: %s has no rule for Pave to drive (it has %s): Pave drives the rule named %s or else the first rule that matches every request and sends it to Services %s-*, as the scaffold's %s/httproute.yaml has",
		r.c.Name, r.obj(service), names(seen), PrimaryRoute, service, gatewayManifests)
}

// Weights reads the primary rule as parts per million; weights a person
// wrote (0–100) are scaled. backendRefs that are not per-version Services
// (the scaffold's SERVICE-stable / SERVICE-canary before any release) mean
// no version weights yet: state.ErrNotFound, and the first release takes
// the rule over.
func (r *GatewayAPIRouter) Weights(ctx context.Context, service string) (Weights, error) {
	if err := ValidName("service", service); err != nil {
		return nil, err
	}
	hr, err := r.c.Gateway.GatewayV1().HTTPRoutes(r.ns).Get(ctx, service, metav1.GetOptions{})
	if err != nil {
		return nil, kubeError(r.c.Name, "read", r.obj(service), gatewayManifests, err)
	}
	i, err := r.primary(service, hr)
	if err != nil {
		return nil, err
	}
	raw := map[string]int64{}
	for _, b := range hr.Spec.Rules[i].BackendRefs {
		v, ok := strings.CutPrefix(string(b.Name), service+"-")
		if !ok || v == "stable" || v == "canary" || ValidName("version", v) != nil {
			return nil, fmt.Errorf("cluster %s: %s sends traffic to %s, not a per-version Service %s-VERSION: no version weights yet: %w",
				r.c.Name, r.obj(service), b.Name, service, state.ErrNotFound)
		}
		wt := int64(1) // the API's default weight
		if b.Weight != nil {
			wt = int64(*b.Weight)
		}
		raw[v] += wt
	}
	w, err := toPPM(raw)
	if err != nil {
		if errors.Is(err, errAllZero) {
			err = fmt.Errorf("%v: no version weights yet: %w", err, state.ErrNotFound)
		}
		return nil, fmt.Errorf("cluster %s: %s: %w", r.c.Name, r.obj(service), err)
	}
	return w, nil
}
