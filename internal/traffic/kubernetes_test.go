package traffic

import (
	"context"
	"errors"
	"strings"
	"testing"

	istioapi "istio.io/client-go/pkg/apis/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/pave-platform/pave/internal/kube"
	"github.com/pave-platform/pave/internal/scaffold"
)

var bg = context.Background()

// scaffoldObjects are the routing objects `pave new` ships for service,
// rendered from the scaffold's templates (namespace default, as a fake or
// a test cluster has it): the VirtualService and DestinationRule of
// deploy/base and the HTTPRoute of deploy/gateway-api.
func scaffoldObjects(t testing.TB, service string) (*istioapi.VirtualService, *istioapi.DestinationRule, *gatewayv1.HTTPRoute) {
	t.Helper()
	files, err := scaffold.Render(scaffold.Answers{Name: service}.WithDefaults(), scaffold.CurrentVersion())
	if err != nil {
		t.Fatalf("render the scaffold: %v", err)
	}
	decode := func(path string, into any) {
		t.Helper()
		data, ok := files[path]
		if !ok {
			t.Fatalf("the scaffold has no %s", path)
		}
		if err := yaml.Unmarshal(data, into); err != nil {
			t.Fatalf("scaffold %s: %v", path, err)
		}
	}
	vs, dr, hr := &istioapi.VirtualService{}, &istioapi.DestinationRule{}, &gatewayv1.HTTPRoute{}
	decode("deploy/base/virtualservice.yaml", vs)
	decode("deploy/base/destinationrule.yaml", dr)
	decode("deploy/gateway-api/httproute.yaml", hr)
	vs.Namespace, dr.Namespace, hr.Namespace = "default", "default", "default"
	return vs, dr, hr
}

// conflictOnce makes the first update of resource fail as a stale write
// would on a real API server.
func conflictOnce(f *k8stesting.Fake, resource string) *int {
	n := 0
	f.PrependReactor("update", resource, func(k8stesting.Action) (bool, runtime.Object, error) {
		n++
		if n == 1 {
			return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: resource}, "x", errors.New("the object has been modified; please apply your changes to the latest version and try again"))
		}
		return false, nil, nil
	})
	return &n
}

// countUpdates counts the update calls on resource.
func countUpdates(f *k8stesting.Fake, resource string) func() int {
	return func() int {
		n := 0
		for _, a := range f.Actions() {
			if a.GetVerb() == "update" && a.GetResource().Resource == resource {
				n++
			}
		}
		return n
	}
}

func mustContain(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not contain %q", err, p)
		}
	}
}

func TestNewKubernetesRouterPicksByKind(t *testing.T) {
	_, _, hr := scaffoldObjects(t, "shop")
	c := &kube.Cluster{Name: "seoul", Gateway: gatewayFake(hr)}
	r, err := NewKubernetesRouter("gatewayapi", c, "")
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := r.(*GatewayAPIRouter); !ok || g.ns != "default" {
		t.Fatalf("got %T %+v", r, r)
	}
	if _, err := NewKubernetesRouter("istio", c, "default"); err == nil || !strings.Contains(err.Error(), "cluster seoul") {
		t.Fatalf("istio router without an Istio client: %v", err)
	}
	if _, err := NewKubernetesRouter("linkerd", c, ""); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "istio or gatewayapi") {
		t.Fatalf("unknown kind: %v", err)
	}
}

func TestToPPMNormalisesHumanWeights(t *testing.T) {
	w, err := toPPM(map[string]int64{"v1": 2, "v2": 1})
	if err != nil || w.Validate() != nil || w["v1"] != 666_667 || w["v2"] != 333_333 {
		t.Fatalf("%v %v", w, err)
	}
	if w, err := toPPM(map[string]int64{"v1": 90, "v2": 10}); err != nil || w["v1"] != 900_000 || w["v2"] != 100_000 {
		t.Fatalf("0–100: %v %v", w, err)
	}
	if _, err := toPPM(map[string]int64{"v1": 0}); !errors.Is(err, errAllZero) {
		t.Fatalf("all-zero weights: %v", err)
	}
	if _, err := toPPM(map[string]int64{"v1": 5, "v2": -1}); err == nil || !strings.Contains(err.Error(), "v2") {
		t.Fatalf("negative weight: %v", err)
	}
}

func TestKubeErrorNamesClusterObjectAndCause(t *testing.T) {
	gr := schema.GroupResource{Group: "networking.istio.io", Resource: "virtualservices"}
	for _, tc := range []struct {
		verb string
		err  error
		want string
	}{
		{"read", apierrors.NewNotFound(gr, "shop"), "virtualservice default/shop not found: apply the service's deploy/base manifests"},
		{"update", apierrors.NewForbidden(gr, "shop", errors.New("no")), "not authorised to update virtualservice default/shop"},
		{"update", apierrors.NewConflict(gr, "shop", errors.New("modified")), "gave up after 20 tries"},
		{"read", errors.New(`bad value in field weight: "x"`), "virtualservice default/shop cannot be parsed"},
		{"read", context.DeadlineExceeded, "cannot reach the API server"},
	} {
		err := kubeError("seoul", tc.verb, "virtualservice default/shop", "deploy/base", tc.err)
		mustContain(t, err, "cluster seoul", tc.want)
		if !errors.Is(err, tc.err) {
			t.Errorf("%v does not wrap %v", err, tc.err)
		}
	}
}

func conflictErr() error {
	return apierrors.NewConflict(schema.GroupResource{Resource: "virtualservices"}, "shop", errors.New("the object has been modified"))
}
