package release

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/traffic"
)

// probeTarget is a target that records how many calls are in flight, per
// service and in all, and can block or fail one service's deploys.
type probeTarget struct {
	*fakeTarget
	pause time.Duration // each call lasts this long

	mu        sync.Mutex
	inFlight  map[string]int
	maxPer    map[string]int
	total     int
	maxTotal  int
	block     string        // this service's Deploy waits for gate
	gate      chan struct{} // closed: the blocked service goes on
	fail      string        // this service's Deploy fails
	deploys   map[string]int
	reentered []string
}

func newProbeTarget() *probeTarget {
	return &probeTarget{fakeTarget: newTarget(), inFlight: map[string]int{}, maxPer: map[string]int{}, deploys: map[string]int{}, gate: make(chan struct{})}
}

func (p *probeTarget) enter(service string) func() {
	p.mu.Lock()
	p.inFlight[service]++
	p.total++
	if p.inFlight[service] > 1 {
		p.reentered = append(p.reentered, service)
	}
	p.maxPer[service] = max(p.maxPer[service], p.inFlight[service])
	p.maxTotal = max(p.maxTotal, p.total)
	p.mu.Unlock()
	time.Sleep(p.pause)
	return func() {
		p.mu.Lock()
		p.inFlight[service]--
		p.total--
		p.mu.Unlock()
	}
}

func (p *probeTarget) Deploy(ctx context.Context, d Deployment) error {
	defer p.enter(d.Service)()
	p.mu.Lock()
	p.deploys[d.Service]++
	block, fail := p.block == d.Service, p.fail == d.Service
	p.mu.Unlock()
	if block {
		select {
		case <-p.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail {
		return errors.New("registry unavailable")
	}
	return p.fakeTarget.Deploy(ctx, d)
}

func (p *probeTarget) Status(ctx context.Context, service, version string) (bool, int, int, error) {
	defer p.enter(service)()
	return p.fakeTarget.Status(ctx, service, version)
}

func (p *probeTarget) count(service string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.deploys[service]
}

// runEngine starts eng.Run and returns a stop that waits for it to end.
func runEngine(t *testing.T, eng *Engine, interval time.Duration) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx, interval) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("Run did not return within 30s of its context's end")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 60s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func openStore(t *testing.T) *state.SQLite {
	t.Helper()
	s, err := state.OpenSQLite(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// firstRelease is a service's first release: promoted as soon as its
// version is ready.
func firstRelease(service string) Release {
	r := New(service, "v1")
	r.Spec.Binary = "/srv/" + service
	return r
}

// One release stuck in its target (a slow build) holds up no other
// service's release: the engine reconciles services in parallel.
func TestRunReconcilesServicesInParallel(t *testing.T) {
	target := newProbeTarget()
	target.block = "slow"
	eng := NewEngine(openStore(t), &fakeRouter{w: map[string]traffic.Weights{}}, target, newMetrics(), WithWorkers(4))
	for _, s := range []string{"slow", "a", "b", "c", "d", "e"} {
		if _, err := eng.Create(ctx, firstRelease(s)); err != nil {
			t.Fatal(err)
		}
	}
	runEngine(t, eng, 20*time.Millisecond)
	eventually(t, "every other service promoted while slow's deploy is blocked", func() bool {
		for _, s := range []string{"a", "b", "c", "d", "e"} {
			if r, err := eng.Get(ctx, s+"-v1"); err != nil || r.Status.Phase != Promoted {
				return false
			}
		}
		return true
	})
	if r, _ := eng.Get(ctx, "slow-v1"); r.Status.Phase != Pending {
		t.Fatalf("slow is %s while its deploy is blocked", r.Status.Phase)
	}
	close(target.gate)
	eventually(t, "slow promoted once its deploy goes on", func() bool {
		r, err := eng.Get(ctx, "slow-v1")
		return err == nil && r.Status.Phase == Promoted
	})
}

// Many workers, many releases, and a person's reconciles on top: a
// service is never worked on by two at once, while different services
// are; every release is reconciled again and again, and each timing is
// in order (due, start, done).
func TestRunNeverWorksOnOneServiceTwiceAtOnce(t *testing.T) {
	target := newProbeTarget()
	target.pause = time.Millisecond
	var services []string
	for i := range 12 {
		s := fmt.Sprintf("svc%02d", i)
		services = append(services, s)
		target.notReady[s+"@v1"] = true // pending for good: each turn deploys and asks
	}
	var mu sync.Mutex
	turns := map[string]int{}
	var bad []string
	timing := func(tm Timing) {
		mu.Lock()
		defer mu.Unlock()
		turns[tm.Release]++
		if tm.Due.After(tm.Start) || tm.Start.After(tm.Done) {
			bad = append(bad, fmt.Sprintf("%s: due %s, start %s, done %s", tm.Release, tm.Due, tm.Start, tm.Done))
		}
	}
	clock := &fakeClock{now: time.Now()} // still: the ready timeout never comes
	eng := NewEngine(openStore(t), &fakeRouter{w: map[string]traffic.Weights{}}, target, newMetrics(), WithWorkers(8), WithTimings(timing), WithClock(clock))
	for _, s := range services {
		if _, err := eng.Create(ctx, firstRelease(s)); err != nil {
			t.Fatal(err)
		}
	}
	stop := runEngine(t, eng, 10*time.Millisecond)
	// A person's reconciles (the API's actions lock the same way).
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 50 {
				if err := eng.ReconcileOne(ctx, services[(i+j)%len(services)]+"-v1"); err != nil {
					t.Errorf("reconcile: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	eventually(t, "every release reconciled 5 times by Run", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range services {
			if turns[s+"-v1"] < 5 {
				return false
			}
		}
		return true
	})
	stop()
	target.mu.Lock()
	defer target.mu.Unlock()
	if len(target.reentered) > 0 {
		t.Fatalf("services worked on twice at once, %d times: %v", len(target.reentered), target.reentered[:min(10, len(target.reentered))])
	}
	if target.maxTotal < 2 {
		t.Fatalf("at most %d service(s) worked on at once with 8 workers; want parallel work", target.maxTotal)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("timings out of order: %v", bad)
	}
}

// A release whose reconcile keeps failing is retried with a back-off, not
// on every pass, while the others keep their pace.
func TestRunBacksOffAFailingRelease(t *testing.T) {
	target := newProbeTarget()
	target.fail = "broken"
	target.notReady["fine@v1"] = true
	eng := NewEngine(openStore(t), &fakeRouter{w: map[string]traffic.Weights{}}, target, newMetrics(), WithWorkers(2), WithClock(&fakeClock{now: time.Now()}))
	for _, s := range []string{"broken", "fine"} {
		if _, err := eng.Create(ctx, firstRelease(s)); err != nil {
			t.Fatal(err)
		}
	}
	stop := runEngine(t, eng, 20*time.Millisecond)
	eventually(t, "the healthy release reconciled 80 times", func() bool { return target.count("fine") >= 80 })
	stop()
	broken, fine := target.count("broken"), target.count("fine")
	// Back-off from 2 ms doubling to 100 ms: 80 passes of 20 ms (1.6 s)
	// hold at most about 20 retries; without it there would be 80.
	if broken < 2 || broken > fine/2 {
		t.Fatalf("the failing release was tried %d times while the healthy one was reconciled %d times; want a back-off (retried, but under half as often)", broken, fine)
	}
}

// Each release has its own turn within the interval: the releases found
// at the start (a leader taking over) are not all due at the same
// instant, and neither are the steps of releases started together. The
// turn is stable, so each release is still due once an interval.
func TestRunSpreadsTurns(t *testing.T) {
	c := newController(nil, time.Second)
	tenths := make([]int, 10)
	for i := range 1000 {
		name := fmt.Sprintf("svc-%04d-v2", i)
		turn := c.turn(name)
		if turn < 0 || turn >= time.Second || turn != c.turn(name) {
			t.Fatalf("turn of %s: %v, want a stable time within the interval", name, turn)
		}
		tenths[turn/(100*time.Millisecond)]++
	}
	for i, n := range tenths {
		if n < 50 || n > 150 {
			t.Errorf("%d of 1,000 releases have their turn in the interval's tenth %d, want about 100: %v", n, i, tenths)
		}
	}

	// Run: the first pass's releases became due across the interval.
	var mu sync.Mutex
	due := map[string]time.Time{}
	eng := NewEngine(openStore(t), &fakeRouter{w: map[string]traffic.Weights{}}, newTarget(), newMetrics(), WithTimings(func(tm Timing) {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := due[tm.Release]; !ok {
			due[tm.Release] = tm.Due
		}
	}))
	for i := range 50 {
		if _, err := eng.Create(ctx, firstRelease(fmt.Sprintf("svc-%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	const interval = 2 * time.Second
	runEngine(t, eng, interval)
	eventually(t, "every release reconciled once", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(due) == 50
	})
	mu.Lock()
	defer mu.Unlock()
	var first, last time.Time
	for _, d := range due {
		if first.IsZero() || d.Before(first) {
			first = d
		}
		if d.After(last) {
			last = d
		}
	}
	if span := last.Sub(first); span < interval/2 {
		t.Errorf("the first pass's 50 releases became due within %v, want them spread over most of the %v interval", span, interval)
	}
}
