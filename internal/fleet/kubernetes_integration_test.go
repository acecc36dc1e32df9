package fleet_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	networkingv1 "istio.io/api/networking/v1"
	istioapi "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pave-platform/pave/internal/fleet"
	"github.com/pave-platform/pave/internal/kube"
	"github.com/pave-platform/pave/internal/kube/kubetest"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/internal/traffic"
)

// simTraffic stands in for the users and the mesh of one cluster: each
// second it sends requests by the weights the cluster's real VirtualService
// holds, and counts them cumulatively as Istio's metrics would.
type simTraffic struct {
	mu     sync.Mutex
	router release.Router
	snap   stats.Snapshot
	errs   map[string]float64 // error probability by version
	rng    *rand.Rand
	carry  map[string]int64 // parts of a request not sent yet, in ppm·rps
}

func (s *simTraffic) Snapshot(context.Context, string) (stats.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := stats.Snapshot{}
	for v, c := range s.snap {
		c.Total.Latency = append([]uint64(nil), c.Total.Latency...)
		out[v] = c
	}
	return out, nil
}

func (s *simTraffic) serve(ctx context.Context, rps int) {
	w, err := s.router.Weights(ctx, "shop")
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.carry == nil {
		s.carry = map[string]int64{}
	}
	for v, ppm := range w {
		c := s.snap[v]
		// 0.01% of 20,000 req/s is 2 a second; smaller shares accumulate.
		s.carry[v] += int64(rps) * ppm
		n := s.carry[v] / traffic.Total
		s.carry[v] %= traffic.Total
		for range n {
			status := 200
			if s.rng.Float64() < s.errs[v] {
				status = 500
			}
			c.Total.Observe(status, 10+5*s.rng.Float64())
		}
		s.snap[v] = c
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// rig is two real API servers registered as Pave clusters, with the
// scaffold's Istio objects for service shop and v1 running at 100%.
type rig struct {
	t        *testing.T
	clusters []*kubetest.Cluster
	reg      *fleet.Registry
	traffic  map[string]*simTraffic
	eng      *release.Engine
	clock    *clock
	judge    func(*appsv1.Deployment) kubetest.Verdict
}

// startGate lets one rig at a time start its API servers: a start is
// CPU-bound for seconds and has a deadline, while a running rig mostly
// waits, so the parallel tests (-parallel) overlap their releases rather
// than their starts.
var startGate = make(chan struct{}, 1)

func startClusters(t *testing.T) []*kubetest.Cluster {
	t.Helper()
	startGate <- struct{}{}
	defer func() { <-startGate }()
	return kubetest.StartN(t, "seoul", "busan")
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ctx := context.Background()
	r := &rig{t: t, clusters: startClusters(t), traffic: map[string]*simTraffic{},
		clock: &clock{t: time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)}}
	dir := t.TempDir()
	st, err := state.OpenSQLite(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r.reg = &fleet.Registry{Store: st, DataDir: dir}
	pctx, stop := context.WithCancel(ctx)
	t.Cleanup(stop)
	local := map[string]release.Cluster{}
	for i, c := range r.clusters {
		kc, err := os.ReadFile(c.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := r.reg.AddKubernetes(ctx, fleet.Cluster{Name: c.Name, Datacenter: fmt.Sprintf("kr-%d", i+1), Namespace: "default", Router: "istio"}, kc)
		if err != nil {
			t.Fatal(err)
		}
		applyScaffold(t, c)
		seams, err := fleet.KubernetesSeams(c.Clients, rec, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		sim := &simTraffic{router: seams.Router, snap: stats.Snapshot{}, errs: map[string]float64{}, rng: rand.New(rand.NewPCG(uint64(i), 7))}
		seams.Metrics = sim
		r.traffic[c.Name] = sim
		local[c.Name] = seams
		go c.PlayDeployments(pctx, func(d *appsv1.Deployment) kubetest.Verdict {
			if r.judge != nil {
				return r.judge(d)
			}
			return kubetest.Ready
		})
	}
	// The engine sees the registered clusters through the same fleet view
	// pave up uses, with the seams connected above (a test metric source).
	f := &fleet.ReleaseFleet{Registry: r.reg, Connect: func(_ context.Context, c fleet.Cluster, _ *kube.Cluster) (release.Cluster, error) {
		return local[c.Name], nil
	}}
	r.eng = release.NewFleetEngine(st, f, release.WithClock(r.clock))
	return r
}

// applyScaffold creates what `pave new` ships for service shop: the
// VirtualService with the team's own route and the DestinationRule.
func applyScaffold(t *testing.T, c *kubetest.Cluster) {
	t.Helper()
	ctx := context.Background()
	vs := &istioapi.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "default"}}
	vs.Spec.Hosts = []string{"shop"}
	vs.Spec.Http = []*networkingv1.HTTPRoute{
		{Name: "team-admin", Match: []*networkingv1.HTTPMatchRequest{{Uri: &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Prefix{Prefix: "/admin"}}}},
			Route: []*networkingv1.HTTPRouteDestination{{Destination: &networkingv1.Destination{Host: "shop-admin"}}}},
		{Name: "primary", Route: []*networkingv1.HTTPRouteDestination{
			{Destination: &networkingv1.Destination{Host: "shop", Subset: "stable"}, Weight: 100},
			{Destination: &networkingv1.Destination{Host: "shop", Subset: "canary"}, Weight: 0}}},
	}
	if _, err := c.Clients.Istio.NetworkingV1().VirtualServices("default").Create(ctx, vs, metav1.CreateOptions{FieldManager: "team"}); err != nil {
		t.Fatal(err)
	}
	dr := &istioapi.DestinationRule{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: "default"}}
	dr.Spec.Host = "shop"
	dr.Spec.Subsets = []*networkingv1.Subset{{Name: "stable", Labels: map[string]string{"pave.dev/track": "stable"}}}
	if _, err := c.Clients.Istio.NetworkingV1().DestinationRules("default").Create(ctx, dr, metav1.CreateOptions{FieldManager: "team"}); err != nil {
		t.Fatal(err)
	}
}

func istioRouter(c *kubetest.Cluster) traffic.Router {
	r, err := traffic.NewKubernetesRouter("istio", c.Clients, "default")
	if err != nil {
		panic(err)
	}
	return r
}

func spec(version string) release.Release {
	rel := release.New("shop", version)
	rel.Spec.Image = "registry.local/shop:" + version
	rel.Spec.Replicas = 2
	rel.Spec.Steps = []release.Percent{100, 10_000, 500_000, 1_000_000} // 0.01%, 1%, 50%, 100%
	rel.Spec.StepDuration = release.Duration(5 * time.Second)
	rel.Spec.StepSamples = 10
	rel.Spec.Analysis.MinSamples = 10
	rel.Spec.MaxHold = release.Duration(time.Minute)
	rel.Spec.ScaleDownDelay = release.Duration(5 * time.Second)
	return rel
}

// run ticks a simulated second at a time (real API calls in between) until
// done or n ticks, serving rps per cluster.
func (r *rig) run(name string, n, rps int, done func(release.Release) bool) release.Release {
	r.t.Helper()
	ctx := context.Background()
	var rel release.Release
	for i := 0; i < n; i++ {
		for _, s := range r.traffic {
			s.serve(ctx, rps)
		}
		r.clock.add(time.Second)
		_ = r.eng.Reconcile(ctx) // errors are the point of some tests; the record says what happened
		var err error
		if rel, err = r.eng.Get(ctx, name); err != nil {
			r.t.Fatal(err)
		}
		if done(rel) {
			return rel
		}
		time.Sleep(20 * time.Millisecond) // let the stand-in controller write status
	}
	r.t.Fatalf("after %d ticks release %s is %s: %s (clusters %+v)", n, name, rel.Status.Phase, rel.Status.Message, rel.Status.Clusters)
	return rel
}

func (r *rig) weights(c *kubetest.Cluster) traffic.Weights {
	r.t.Helper()
	w, err := istioRouter(c).Weights(context.Background(), "shop")
	if err != nil {
		r.t.Fatal(err)
	}
	return w
}

// releaseV1 makes v1 the stable version in both clusters.
func (r *rig) releaseV1() {
	r.t.Helper()
	rel := spec("v1")
	created, err := r.eng.Create(context.Background(), rel)
	if err != nil {
		r.t.Fatal(err)
	}
	r.run(created.Metadata.Name, 60, 100, func(x release.Release) bool { return x.Settled() })
}

func TestKubernetesReleaseInWavesOnTwoRealClusters(t *testing.T) {
	t.Parallel() // its own two API servers and store; the releases mostly wait
	r := newRig(t)
	ctx := context.Background()
	r.releaseV1()
	seoul, busan := r.clusters[0], r.clusters[1]
	for _, c := range r.clusters {
		if w := r.weights(c); w["v1"] != traffic.Total {
			t.Fatalf("cluster %s after v1: %s", c.Name, w)
		}
	}
	// Someone else's fields on Pave's objects: an annotation on the
	// Deployment by "team" and a team route in the VirtualService.
	patch := []byte(`{"metadata":{"annotations":{"team.example/owner":"payments"}}}`)
	if _, err := seoul.Clients.Kube.AppsV1().Deployments("default").Patch(ctx, "shop-v1", types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "team"}); err != nil {
		t.Fatal(err)
	}

	created, err := r.eng.Create(ctx, spec("v2"))
	if err != nil {
		t.Fatal(err)
	}
	// Both clusters carry v1 alone when the release is created.
	seen := map[string][]int64{"seoul": {0}, "busan": {0}}
	final := r.run(created.Metadata.Name, 400, 20000, func(x release.Release) bool {
		for _, c := range r.clusters {
			w, err := istioRouter(c).Weights(ctx, "shop")
			if err == nil {
				if s := seen[c.Name]; len(s) == 0 || s[len(s)-1] != w["v2"] {
					seen[c.Name] = append(seen[c.Name], w["v2"])
				}
			}
		}
		return x.Settled()
	})
	if final.Status.Phase != release.Promoted {
		t.Fatalf("ended %s: %s", final.Status.Phase, final.Status.Message)
	}
	// seoul went through every step before busan started; 0.01% was
	// written as a relative weight the real schema accepted. During the
	// gate after seoul's wave, stable keeps a 1% control there (99% canary),
	// so the gate compares the versions within the same cluster.
	if got := fmt.Sprint(seen["seoul"]); got != "[0 100 10000 500000 990000 1000000]" {
		t.Errorf("seoul's canary weights went %s", got)
	}
	if got := fmt.Sprint(seen["busan"]); got != "[0 100 10000 500000 1000000]" {
		t.Errorf("busan's canary weights went %s", got)
	}
	vs, err := busan.Clients.Istio.NetworkingV1().VirtualServices("default").Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range vs.Spec.Http {
		names = append(names, h.Name)
	}
	if strings.Join(names, ",") != "pave-header-v2,team-admin,primary" {
		t.Errorf("busan's routes: %v; the team's route must stay", names)
	}
	d, err := seoul.Clients.Kube.AppsV1().Deployments("default").Get(ctx, "shop-v1", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("stable Deployment gone at promotion (it waits for the scale-down delay): %v", err)
	}
	if d.Annotations["team.example/owner"] != "payments" {
		t.Error("Pave's apply removed the team's annotation")
	}
	r.run(created.Metadata.Name, 30, 10, func(x release.Release) bool { return x.Status.ScaledDown })
	if _, err := seoul.Clients.Kube.AppsV1().Deployments("default").Get(ctx, "shop-v1", metav1.GetOptions{}); err == nil {
		t.Error("v1 still runs after the scale-down")
	}
}

func TestKubernetesFailureInSecondWaveRollsBackTheFirst(t *testing.T) {
	t.Parallel() // its own two API servers and store; the releases mostly wait
	r := newRig(t)
	ctx := context.Background()
	r.releaseV1()
	r.traffic["busan"].errs["v2"] = 0.3 // broken only in busan
	created, err := r.eng.Create(ctx, spec("v2"))
	if err != nil {
		t.Fatal(err)
	}
	final := r.run(created.Metadata.Name, 400, 20000, func(x release.Release) bool { return x.Settled() })
	if final.Status.Phase != release.RolledBack || final.Status.Wave != 1 {
		t.Fatalf("ended %s in wave %d: %s", final.Status.Phase, final.Status.Wave+1, final.Status.Message)
	}
	for _, c := range r.clusters {
		if w := r.weights(c); w["v1"] != traffic.Total {
			t.Errorf("cluster %s after the rollback: %s, want v1=100", c.Name, w)
		}
	}
}

func TestKubernetesUnreachableClusterMidRelease(t *testing.T) {
	t.Parallel() // its own two API servers and store; the releases mostly wait
	r := newRig(t)
	ctx := context.Background()
	r.releaseV1()
	created, err := r.eng.Create(ctx, spec("v2"))
	if err != nil {
		t.Fatal(err)
	}
	r.run(created.Metadata.Name, 60, 20000, func(x release.Release) bool { return x.Status.Phase == release.Progressing })
	r.clusters[1].Stop() // busan's API server is gone
	final := r.run(created.Metadata.Name, 200, 20000, func(x release.Release) bool { return x.Status.Phase.Terminal() })
	if final.Status.Phase != release.RolledBack || !strings.Contains(final.Status.Message, "cluster busan") {
		t.Fatalf("ended %s: %s", final.Status.Phase, final.Status.Message)
	}
	if w := r.weights(r.clusters[0]); w["v1"] != traffic.Total {
		t.Fatalf("seoul after busan was lost: %s, want back on v1", w)
	}
	if final.Settled() {
		t.Error("settled although busan never confirmed its weights")
	}
}

func TestKubernetesRefusesAVirtualServiceItDoesNotOwn(t *testing.T) {
	t.Parallel() // its own two API servers and store; the releases mostly wait
	r := newRig(t)
	ctx := context.Background()
	busan := r.clusters[1]
	vs, err := busan.Clients.Istio.NetworkingV1().VirtualServices("default").Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vs.Spec.Http[1].Name = "main" // no route named primary
	if _, err := busan.Clients.Istio.NetworkingV1().VirtualServices("default").Update(ctx, vs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Refused when created, naming the cluster, the object and the routes
	// it has: nothing was deployed or routed in either cluster.
	_, err = r.eng.Create(ctx, spec("v1"))
	if err == nil || !strings.Contains(err.Error(), "cluster busan") || !strings.Contains(err.Error(), "virtualservice default/shop") || !strings.Contains(err.Error(), `"main"`) {
		t.Fatalf("create: %v", err)
	}
	if all, _ := r.eng.List(ctx); len(all) != 0 {
		t.Fatalf("a refused release was recorded: %v", all)
	}
	for _, c := range r.clusters {
		if ds, _ := c.Clients.Kube.AppsV1().Deployments("default").List(ctx, metav1.ListOptions{}); len(ds.Items) != 0 {
			t.Errorf("cluster %s runs %d deployments after a refused release", c.Name, len(ds.Items))
		}
	}
	got, _ := busan.Clients.Istio.NetworkingV1().VirtualServices("default").Get(ctx, "shop", metav1.GetOptions{})
	if len(got.Spec.Http) != 2 || got.Spec.Http[1].Route[0].Destination.Subset != "stable" {
		t.Fatalf("busan's VirtualService was changed: %v", got.Spec.Http)
	}
}
