package traffic

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pave-platform/pave/internal/kube"
)

// NewKubernetesRouter picks the router of a Kubernetes cluster: "istio"
// (VirtualService weights between DestinationRule subsets) or "gatewayapi"
// (HTTPRoute backendRef weights between per-version Services). Adding a
// provider is one file and one case here.
func NewKubernetesRouter(kind string, c *kube.Cluster, namespace string) (Router, error) {
	if namespace == "" {
		namespace = "default"
	}
	switch kind {
	case "istio", "":
		return &IstioRouter{c: c, ns: namespace}, nil
	case "gatewayapi":
		return &GatewayAPIRouter{c: c, ns: namespace}, nil
	}
	return nil, fmt.Errorf("%w: router %q: want istio or gatewayapi", ErrInvalid, kind)
}

// HeaderRoutePrefix names the routes Pave adds for testers: a request with
// X-Pave-Version: V reaches version V whatever the weights.
const HeaderRoutePrefix = "pave-header-"

// VersionHeader is the tester header, lower-case as meshes match it.
const VersionHeader = "x-pave-version"

// kubeError names the cluster and the object and says what to do about
// the usual causes.
func kubeError(cluster, verb, obj string, err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("cluster %s: %s not found: apply the service's deploy manifests (pave new writes them) first: %w", cluster, obj, err)
	case apierrors.IsUnauthorized(err), apierrors.IsForbidden(err):
		return fmt.Errorf("cluster %s: not authorised to %s %s: check the kubeconfig's user and its RBAC: %w", cluster, verb, obj, err)
	}
	return fmt.Errorf("cluster %s: %s %s: %w", cluster, verb, obj, err)
}

// toPPM turns weights of any scale (0–100 written by a person, or parts
// per million written by Pave) into parts per million summing to Total.
func toPPM(raw map[string]int64) (Weights, error) {
	versions := make([]string, 0, len(raw))
	var sum int64
	for v, w := range raw {
		if w < 0 {
			return nil, errors.New("negative weight")
		}
		sum += w
		versions = append(versions, v)
	}
	if sum == 0 {
		return nil, errors.New("every weight is 0")
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

func names(items []string) string { return strings.Join(items, ", ") }

// ConflictBackoff bounds the retries of a read-modify-write that lost a
// race with another writer (resourceVersion conflict): client-go's default
// gives up after 5 tries, too few when several control planes or tools
// change one object; with jitter the writers spread out.
var ConflictBackoff = wait.Backoff{Steps: 20, Duration: 10 * time.Millisecond, Factor: 1.5, Jitter: 1, Cap: 2 * time.Second}
