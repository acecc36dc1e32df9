package scaffold

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	istionet "istio.io/api/networking/v1alpha3"
	istiov1 "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"
)

// kustomization mirrors the fields of kustomize's Kustomization and
// Component (sigs.k8s.io/kustomize/api/types) that the template uses;
// kustomize's module is not a dependency of Pave, and anything else in the
// files is an error here.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Resources  []string `json:"resources,omitempty"`
	Components []string `json:"components,omitempty"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors,omitempty"`
	} `json:"labels,omitempty"`
	Patches []struct {
		Path string `json:"path"`
	} `json:"patches,omitempty"`
}

// istioObject decodes an Istio resource strictly. Istio's generated
// UnmarshalJSON ignores unknown fields in spec, so spec is decoded again with
// protojson, which rejects them.
func istioObject(doc []byte, obj any, spec proto.Message) error {
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return err
	}
	var raw struct {
		Spec json.RawMessage `json:"spec"`
	}
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(js, &raw); err != nil {
		return err
	}
	return protojson.UnmarshalOptions{DiscardUnknown: false}.Unmarshal(raw.Spec, spec)
}

// decodeStrict decodes one YAML document into the typed Go struct of its
// apiVersion and kind, rejecting unknown fields, and returns it.
func decodeStrict(doc []byte) (any, error) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return nil, err
	}
	var obj any
	switch head.APIVersion + " " + head.Kind {
	case "apps/v1 Deployment":
		obj = &appsv1.Deployment{}
	case "v1 Service":
		obj = &corev1.Service{}
	case "v1 ServiceAccount":
		obj = &corev1.ServiceAccount{}
	case "autoscaling/v2 HorizontalPodAutoscaler":
		obj = &autoscalingv2.HorizontalPodAutoscaler{}
	case "policy/v1 PodDisruptionBudget":
		obj = &policyv1.PodDisruptionBudget{}
	case "networking.k8s.io/v1 NetworkPolicy":
		obj = &networkingv1.NetworkPolicy{}
	case "gateway.networking.k8s.io/v1 HTTPRoute":
		obj = &gatewayv1.HTTPRoute{}
	case "kustomize.config.k8s.io/v1beta1 Kustomization", "kustomize.config.k8s.io/v1alpha1 Component":
		obj = &kustomization{}
	case "networking.istio.io/v1 VirtualService":
		vs := &istiov1.VirtualService{}
		return vs, istioObject(doc, vs, &istionet.VirtualService{})
	case "networking.istio.io/v1 DestinationRule":
		dr := &istiov1.DestinationRule{}
		return dr, istioObject(doc, dr, &istionet.DestinationRule{})
	default:
		return nil, fmt.Errorf("no typed struct for apiVersion %q kind %q", head.APIVersion, head.Kind)
	}
	return obj, yaml.UnmarshalStrict(doc, obj)
}

func yamlDocs(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(b, []byte("\n---\n")) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

func testAnswers() Answers {
	return Answers{Name: "orders", Owner: "payments", Memory: "512Mi", Clusters: []string{"seoul", "busan"}}.WithDefaults()
}

// Every manifest of every template version decodes strictly into its typed
// Go struct, and carries what the issue asks for.
func TestManifestsDecodeStrictly(t *testing.T) {
	for v := 1; v <= CurrentVersion(); v++ {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			files, err := Render(testAnswers(), v)
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[string]int{}
			var names []string
			for p := range files {
				if strings.HasPrefix(p, "deploy/") {
					names = append(names, p)
				}
			}
			sort.Strings(names)
			for _, p := range names {
				for i, doc := range yamlDocs(files[p]) {
					obj, err := decodeStrict(doc)
					if err != nil {
						t.Fatalf("%s document %d: %v\n%s", p, i, err, doc)
					}
					kinds[fmt.Sprintf("%T", obj)]++
					checkObject(t, p, obj)
				}
			}
			for _, want := range []string{"*v1.Deployment", "*v1.Service", "*v1.ServiceAccount", "*v2.HorizontalPodAutoscaler", "*v1.PodDisruptionBudget", "*v1.VirtualService", "*v1.DestinationRule", "*v1.HTTPRoute", "*scaffold.kustomization"} {
				if kinds[want] == 0 {
					t.Errorf("no %s among the manifests (have %v)", want, kinds)
				}
			}
			for _, c := range testAnswers().Clusters {
				if _, ok := files["deploy/overlays/"+c+"/kustomization.yaml"]; !ok {
					t.Errorf("no overlay for cluster %s", c)
				}
			}
		})
	}
}

func checkObject(t *testing.T, path string, obj any) {
	t.Helper()
	switch o := obj.(type) {
	case *appsv1.Deployment:
		if strings.Contains(path, "overlays/") {
			return // a patch
		}
		pod := o.Spec.Template
		if pod.Labels["version"] == "" || o.Labels["version"] == "" {
			t.Errorf("%s: no version label", path)
		}
		c := pod.Spec.Containers[0]
		want := resource.MustParse("512Mi")
		if got := c.Resources.Requests[corev1.ResourceMemory]; got.Cmp(want) != 0 {
			t.Errorf("%s: memory request %v, want 512Mi", path, got.String())
		}
		if got := c.Resources.Limits[corev1.ResourceMemory]; got.Cmp(want) != 0 {
			t.Errorf("%s: memory limit %v, want 512Mi", path, got.String())
		}
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
			t.Errorf("%s: readiness probe is not /readyz", path)
		}
		if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
			t.Errorf("%s: liveness probe is not /healthz", path)
		}
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
			t.Errorf("%s: no preStop hook", path)
		}
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: root filesystem is not read-only", path)
		}
		if ps := pod.Spec.SecurityContext; ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot {
			t.Errorf("%s: not runAsNonRoot", path)
		}
	case *istiov1.DestinationRule:
		var subsets []string
		for _, s := range o.Spec.Subsets {
			subsets = append(subsets, s.Name)
		}
		if strings.Join(subsets, ",") != "stable,canary" {
			t.Errorf("%s: subsets %v, want stable and canary", path, subsets)
		}
	case *istiov1.VirtualService:
		last := o.Spec.Http[len(o.Spec.Http)-1]
		if len(last.Route) != 2 || last.Route[0].Destination.Subset != "stable" || last.Route[0].Weight != 100 || last.Route[1].Destination.Subset != "canary" {
			t.Errorf("%s: the primary route does not split stable/canary 100/0", path)
		}
	case *gatewayv1.HTTPRoute:
		if len(o.Spec.Rules) == 0 {
			t.Errorf("%s: no rules", path)
		}
	}
}

// The strict decoding would catch a typo: each kind rejects an unknown field.
func TestManifestDecodingRejectsUnknownFields(t *testing.T) {
	files, err := Render(testAnswers(), CurrentVersion())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		"deploy/base/deployment.yaml", "deploy/base/service.yaml", "deploy/base/hpa.yaml", "deploy/base/pdb.yaml",
		"deploy/base/serviceaccount.yaml", "deploy/base/networkpolicy.yaml", "deploy/base/kustomization.yaml",
		"deploy/base/virtualservice.yaml", "deploy/base/destinationrule.yaml", "deploy/gateway-api/httproute.yaml",
	} {
		doc := yamlDocs(files[p])[0]
		// An unknown key at the top and one inside spec.
		for _, bad := range [][]byte{
			append([]byte("replicaz: 3\n"), doc...),
			bytes.Replace(doc, []byte("\nspec:\n"), []byte("\nspec:\n  hostz: [x]\n"), 1),
		} {
			if bytes.Equal(bad, doc) {
				continue
			}
			if _, err := decodeStrict(bad); err == nil {
				t.Errorf("%s: an unknown field was accepted:\n%s", p, bad)
			}
		}
	}
}

func TestDashboardAndRecord(t *testing.T) {
	files, err := Render(testAnswers(), CurrentVersion())
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string                 `json:"uid"`
		Links  []struct{ URL string } `json:"links"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(files["observability/dashboard.json"], &dash); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	var red, sat int
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			if strings.Contains(tg.Expr, `service="orders"`) && strings.Contains(tg.Expr, "by (version") {
				red++
			}
			if strings.Contains(tg.Expr, `container="orders"`) {
				sat++
			}
		}
	}
	if red < 3 || sat < 2 {
		t.Errorf("dashboard has %d per-version RED queries and %d saturation queries", red, sat)
	}
	var logs, traces bool
	for _, l := range dash.Links {
		logs = logs || strings.Contains(l.URL, "/ui/logs")
		traces = traces || strings.Contains(l.URL, "/ui/request.html?trace=")
	}
	if !logs || !traces {
		t.Errorf("dashboard lacks links to logs (%v) or traces (%v)", logs, traces)
	}

	ci := string(files[".github/workflows/ci.yaml"])
	// About 15 lines, plus the two that turn the build cache on (v3).
	if n := strings.Count(ci, "\n"); n > 18 {
		t.Errorf("ci.yaml has %d lines, want about 17", n)
	}
	if !strings.Contains(ci, "uses: pave-platform/pave/.github/workflows/service.yaml@") {
		t.Errorf("ci.yaml does not call Pave's reusable workflow:\n%s", ci)
	}
}

// kustomize builds every overlay, and an overlay
// with the Gateway API component; the output decodes strictly again and the
// overlay's patch landed.
func TestOverlaysBuildWithKustomize(t *testing.T) {
	kustomize := tool(t, "kustomize", "build it outside the repository with `GOBIN=<dir> go install sigs.k8s.io/kustomize/kustomize/v5@v5.8.1` and put <dir> on PATH (scripts/test.sh does)")
	a := testAnswers()
	dir := filepath.Join(t.TempDir(), "orders")
	if _, err := New(context.Background(), NewOptions{Answers: a, Dir: dir}); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "deploy/overlays/gw/kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [../../base]\ncomponents: [../../gateway-api]\n")
	for _, overlay := range append(append([]string(nil), a.Clusters...), "gw") {
		out := run(t, dir, nil, kustomize, "build", "deploy/overlays/"+overlay)
		var kinds []string
		for _, doc := range yamlDocs([]byte(out)) {
			obj, err := decodeStrict(doc)
			if err != nil {
				t.Fatalf("overlay %s: %v\n%s", overlay, err, doc)
			}
			kinds = append(kinds, fmt.Sprintf("%T", obj))
			if d, ok := obj.(*appsv1.Deployment); ok && overlay != "gw" {
				if d.Namespace != a.Owner {
					t.Errorf("overlay %s: namespace %q, want %q", overlay, d.Namespace, a.Owner)
				}
				var cluster string
				for _, e := range d.Spec.Template.Spec.Containers[0].Env {
					if e.Name == "PAVE_CLUSTER" {
						cluster = e.Value
					}
				}
				if cluster != overlay {
					t.Errorf("overlay %s: PAVE_CLUSTER %q", overlay, cluster)
				}
			}
		}
		if overlay == "gw" && !slices.Contains(kinds, "*v1.HTTPRoute") {
			t.Errorf("the gateway-api component added no HTTPRoute: %v", kinds)
		}
		if len(kinds) < 8 {
			t.Errorf("overlay %s built only %v", overlay, kinds)
		}
	}
}
