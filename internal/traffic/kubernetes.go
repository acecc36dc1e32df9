package traffic

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pave-platform/pave/internal/kube"
)

// NewKubernetesRouter picks the router of a Kubernetes cluster: "istio"
// (VirtualService weights between DestinationRule subsets; the default) or
// "gatewayapi" (HTTPRoute backendRef weights between per-version Services).
// Adding a provider is one file and one case here.
func NewKubernetesRouter(kind string, c *kube.Cluster, namespace string) (Router, error) {
	if c == nil {
		return nil, fmt.Errorf("%w: router %q: no cluster clients given", ErrInvalid, kind)
	}
	if namespace == "" {
		namespace = "default"
	}
	switch kind {
	case "istio", "":
		if c.Istio == nil {
			return nil, fmt.Errorf("cluster %s: the istio router needs an Istio client", c.Name)
		}
		return &IstioRouter{c: c, ns: namespace}, nil
	case "gatewayapi":
		if c.Gateway == nil {
			return nil, fmt.Errorf("cluster %s: the gatewayapi router needs a Gateway API client", c.Name)
		}
		return &GatewayAPIRouter{c: c, ns: namespace}, nil
	}
	return nil, fmt.Errorf("%w: router %q: want istio or gatewayapi", ErrInvalid, kind)
}

// HeaderRoutePrefix names the routes (Istio) and rules (Gateway API) Pave
// adds for testers: a request with X-Pave-Version: V reaches version V
// whatever the weights.
const HeaderRoutePrefix = "pave-header-"

// VersionHeader is the tester header, lower-case because Istio matches
// header names only in lower case.
const VersionHeader = "x-pave-version"

// ConflictBackoff bounds the retries of a read-modify-write that lost a
// race with another writer (resourceVersion conflict): client-go's default
// gives up after 5 tries, too few when several control planes or tools
// change one object; with jitter the writers spread out.
var ConflictBackoff = wait.Backoff{Steps: 20, Duration: 10 * time.Millisecond, Factor: 1.5, Jitter: 1, Cap: 2 * time.Second}

// kubeError names the cluster and the object and says what to do about the
// usual causes. manifests names the scaffold directory that ships the
// object (deploy/base, deploy/gateway-api). The API error stays wrapped,
// so apierrors.IsConflict and friends still see it.
func kubeError(cluster, verb, obj, manifests string, err error) error {
	var st apierrors.APIStatus
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("cluster %s: %s not found: apply the service's %s manifests (pave new writes them) first: %w", cluster, obj, manifests, err)
	case apierrors.IsUnauthorized(err), apierrors.IsForbidden(err):
		return fmt.Errorf("cluster %s: not authorised to %s %s: check the kubeconfig's user and its RBAC: %w", cluster, verb, obj, err)
	case apierrors.IsConflict(err):
		return fmt.Errorf("cluster %s: %s %s: other writers kept changing it, gave up after %d tries; the traffic is as it was: %w", cluster, verb, obj, ConflictBackoff.Steps, err)
	case apierrors.IsInvalid(err):
		return fmt.Errorf("cluster %s: the API server refused Pave's %s of %s (its schema or a validating webhook): %w", cluster, verb, obj, err)
	case errors.As(err, &st):
		return fmt.Errorf("cluster %s: %s %s: %w", cluster, verb, obj, err)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("cluster %s: %s %s: interrupted: %w", cluster, verb, obj, err)
	case errors.Is(err, context.DeadlineExceeded), unreachable(err):
		return fmt.Errorf("cluster %s: cannot reach the API server to %s %s (is the cluster up? does the kubeconfig name the right server?): %w", cluster, verb, obj, err)
	case verb == "read":
		// Not an answer from the API server and not the network: the
		// typed client got the object but could not decode it, e.g. a
		// weight beyond int32 or a field of the wrong type written with
		// kubectl past a loose schema.
		return fmt.Errorf("cluster %s: %s cannot be parsed as Pave's client reads it: %w; fix the object (kubectl get -o yaml shows it) or re-apply the service's %s manifests", cluster, obj, err, manifests)
	}
	return fmt.Errorf("cluster %s: %s %s: %w", cluster, verb, obj, err)
}

// unreachable tells network failures (the API server is down, the name
// does not resolve) from decode failures, which carry no such type.
func unreachable(err error) bool {
	var ue *url.Error
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ue) || errors.As(err, &ne) || errors.As(err, &oe)
}

// errAllZero: a route whose weights are all 0 carries no version weights.
var errAllZero = errors.New("every weight is 0")

// toPPM turns weights of any scale (0–100 written by a person, or parts
// per million written by Pave) into parts per million summing to Total.
func toPPM(raw map[string]int64) (Weights, error) {
	versions := make([]string, 0, len(raw))
	var sum int64
	for v, w := range raw {
		if w < 0 {
			return nil, fmt.Errorf("version %s has a negative weight (%d)", v, w)
		}
		sum += w
		versions = append(versions, v)
	}
	if sum == 0 {
		return nil, errAllZero
	}
	sort.Strings(versions)
	ws := make([]int64, len(versions))
	for i, v := range versions {
		ws[i] = raw[v]
	}
	out := Weights{}
	for i, p := range Apportion(ws, Total) {
		out[versions[i]] = p
	}
	return out, nil
}

func names(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	return strings.Join(items, ", ")
}
