package traffic

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/pave-platform/pave/internal/kube"
	"github.com/pave-platform/pave/internal/state"
)

// GatewayAPIRouter splits a service's traffic with a Gateway API HTTPRoute
// named SERVICE: its primary rule (the last rule without matches) gets one
// backendRef per version, to the per-version Service SERVICE-VERSION the
// Kubernetes target creates, weighted in parts per million (the API allows
// weights up to 1,000,000, so 0.0001% is exact). Rules named
// pave-header-VERSION, placed first, send X-Pave-Version: V to V. Rules
// and fields that are not Pave's are kept; the update carries the
// resourceVersion it read and is retried on a conflict.
type GatewayAPIRouter struct {
	c  *kube.Cluster
	ns string
}

var _ Router = (*GatewayAPIRouter)(nil)

func (r *GatewayAPIRouter) obj(name string) string { return fmt.Sprintf("httproute %s/%s", r.ns, name) }

func (r *GatewayAPIRouter) primary(service string, rules []gatewayv1.HTTPRouteRule) (int, error) {
	for i := len(rules) - 1; i >= 0; i-- {
		if len(rules[i].Matches) == 0 && len(rules[i].BackendRefs) > 0 {
			return i, nil
		}
	}
	return -1, fmt.Errorf("cluster %s: %s has no rule without matches that has backendRefs: Pave drives the weights of that rule (the scaffold's deploy/gateway-api/httproute.yaml has one)",
		r.c.Name, r.obj(service))
}

// SetWeights rewrites the primary rule's backendRefs and the tester rules
// in one update.
func (r *GatewayAPIRouter) SetWeights(ctx context.Context, service string, w Weights) error {
	if err := w.Validate(); err != nil {
		return err
	}
	routes := r.c.Gateway.GatewayV1().HTTPRoutes(r.ns)
	err := retry.RetryOnConflict(ConflictBackoff, func() error {
		hr, err := routes.Get(ctx, service, metav1.GetOptions{})
		if err != nil {
			return err
		}
		i, err := r.primary(service, hr.Spec.Rules)
		if err != nil {
			return err
		}
		port := gatewayv1.PortNumber(80)
		if refs := hr.Spec.Rules[i].BackendRefs; len(refs) > 0 && refs[0].Port != nil {
			port = *refs[0].Port
		}
		ref := func(v string, weight *int32) gatewayv1.HTTPBackendRef {
			p := port
			return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{
				BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(service + "-" + v), Port: &p}, Weight: weight}}
		}
		primary := hr.Spec.Rules[i]
		primary.BackendRefs = nil
		for _, v := range w.Versions() {
			wt := int32(w[v])
			primary.BackendRefs = append(primary.BackendRefs, ref(v, &wt))
		}
		var rules []gatewayv1.HTTPRouteRule
		for _, v := range w.Versions() {
			name := gatewayv1.SectionName(HeaderRoutePrefix + strings.NewReplacer(".", "-", "_", "-").Replace(v))
			rules = append(rules, gatewayv1.HTTPRouteRule{Name: &name,
				Matches:     []gatewayv1.HTTPRouteMatch{{Headers: []gatewayv1.HTTPHeaderMatch{{Name: VersionHeader, Value: v}}}},
				BackendRefs: []gatewayv1.HTTPBackendRef{ref(v, nil)}})
		}
		for j, rule := range hr.Spec.Rules {
			switch {
			case j == i:
				rules = append(rules, primary)
			case rule.Name != nil && strings.HasPrefix(string(*rule.Name), HeaderRoutePrefix):
			default:
				rules = append(rules, rule)
			}
		}
		hr.Spec.Rules = rules
		_, err = routes.Update(ctx, hr, metav1.UpdateOptions{FieldManager: kube.FieldManager})
		return err
	})
	if err != nil {
		return kubeError(r.c.Name, "update", r.obj(service), err)
	}
	return nil
}

// Weights reads the primary rule. backendRefs that are not per-version
// Services (the scaffold's SERVICE-stable / SERVICE-canary before any
// release) mean no version weights yet: not found, the first release takes
// the rule over.
func (r *GatewayAPIRouter) Weights(ctx context.Context, service string) (Weights, error) {
	hr, err := r.c.Gateway.GatewayV1().HTTPRoutes(r.ns).Get(ctx, service, metav1.GetOptions{})
	if err != nil {
		return nil, kubeError(r.c.Name, "read", r.obj(service), err)
	}
	i, err := r.primary(service, hr.Spec.Rules)
	if err != nil {
		return nil, err
	}
	raw := map[string]int64{}
	for _, b := range hr.Spec.Rules[i].BackendRefs {
		v, ok := strings.CutPrefix(string(b.Name), service+"-")
		if !ok || v == "stable" || v == "canary" || ValidName("version", v) != nil {
			return nil, fmt.Errorf("cluster %s: %s sends traffic to %s, not a per-version Service: no version weights yet: %w", r.c.Name, r.obj(service), b.Name, state.ErrNotFound)
		}
		wt := int64(1) // the API's default weight
		if b.Weight != nil {
			wt = int64(*b.Weight)
		}
		raw[v] += wt
	}
	w, err := toPPM(raw)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %s: %v: %w", r.c.Name, r.obj(service), err, state.ErrNotFound)
	}
	return w, nil
}
