package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/state"
)

// scaleResult is one backend's figures for n concurrent releases.
type scaleResult struct {
	Backend   string
	Releases  int
	Workers   int
	Reconcile []time.Duration // one release's reconcile, every release, every turn
	// Wait is what a user waits: from when a release became due (its turn
	// each second, or its retry) until its reconcile finished.
	Wait []time.Duration
	// Queue is the part of the wait before a worker took the release.
	Queue []time.Duration
	// FirstWait is Wait's part for the releases queued by the loop's
	// first pass (due within its first second): the start, when all n
	// releases have their first, heavier, reconcile due at once.
	// LaterWait is the rest of Wait.
	FirstWait, LaterWait []time.Duration
	// BySecond is each second of the run's reconciles, by when they were
	// due: how many, and the longest wait. Whether the tail comes in
	// bursts (the seconds when releases step together) or in stalls.
	BySecond []secondStat
	Writes   int64 // Put, Delete and Append calls
	// Grouped is the store's group commits during the run: the writes
	// its commits carried and the commits (state.WriteCounter).
	Grouped state.WriteStats
	// Calls is each store call's latency, by call (write, version, get).
	Calls     map[string][]time.Duration
	ByType    map[string]int64 // writes by the timeline entry they carry ("" none: a live-view refresh)
	Wall      time.Duration
	CPU       time.Duration // this process (engine, store client, sim)
	ServerCPU time.Duration // PostgreSQL's processes, on that backend
	RSSPeak   int64         // bytes, VmHWM of this process
	Promoted  int
	RolledBk  int
	// FalseRollbacks are healthy canaries rolled back (the simulation's
	// noise, judged by the real analysis), with one reason.
	FalseRollbacks int
	FalseReason    string
	Errors         int
}

// secondStat is one second of reconciles, by when they were due.
type secondStat struct {
	N       int           // reconciles due in that second
	Slow    int           // of them, reconciles (not waits) over 100 ms
	MaxWait time.Duration // the longest wait
}

// countingStore counts the writes (transactions) the engine makes, and
// which timeline entry each carries.
type countingStore struct {
	state.Store
	writes atomic.Int64
	mu     sync.Mutex
	byType map[string]int64
	// ends is each release's end (promoted, rolled_back...) as its
	// write succeeded: the progress lines count from it, so the bench
	// does not read and decode every release while the engine runs.
	ends map[string]string
	// lat is each store call's latency, by call (write, version, get):
	// where a reconcile's time goes.
	lat map[string][]time.Duration
}

func (c *countingStore) timed(call string, start time.Time) {
	d := time.Since(start)
	c.mu.Lock()
	if c.lat == nil {
		c.lat = map[string][]time.Duration{}
	}
	c.lat[call] = append(c.lat[call], d)
	c.mu.Unlock()
}

// endTypes are the timeline entries that end a release.
var endTypes = map[string]bool{"promoted": true, "rolled_back": true, "aborted": true, "failed": true}

func (c *countingStore) count(typ string) {
	c.writes.Add(1)
	c.mu.Lock()
	if c.byType == nil {
		c.byType = map[string]int64{}
	}
	c.byType[typ]++
	c.mu.Unlock()
}

func (c *countingStore) reset() {
	c.writes.Store(0)
	c.mu.Lock()
	c.byType = nil
	c.lat = nil
	c.mu.Unlock()
}

func (c *countingStore) Put(ctx context.Context, kind, key string, data []byte, ifVersion int64) (state.Object, error) {
	c.count("")
	defer c.timed("write", time.Now())
	return c.Store.Put(ctx, kind, key, data, ifVersion)
}

func (c *countingStore) PutAppend(ctx context.Context, kind, key string, data []byte, ifVersion int64, e state.Event) (state.Object, int64, error) {
	c.count(e.Type)
	defer c.timed("write", time.Now())
	o, seq, err := c.Store.(state.PutAppender).PutAppend(ctx, kind, key, data, ifVersion, e)
	if err == nil && kind == release.StateKind && endTypes[e.Type] {
		c.mu.Lock()
		if c.ends == nil {
			c.ends = map[string]string{}
		}
		c.ends[key] = e.Type
		c.mu.Unlock()
	}
	return o, seq, err
}

// progress counts the releases ended, by the writes that ended them.
func (c *countingStore) progress() (ended, promoted int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.ends {
		if t == "promoted" {
			promoted++
		}
	}
	return len(c.ends), promoted
}

// Versions passes the store's key index through (release.Engine's lister
// uses it when the store has one).
func (c *countingStore) Versions(ctx context.Context, kind string) ([]state.KeyVersion, error) {
	return c.Store.(state.Versioner).Versions(ctx, kind)
}

func (c *countingStore) Get(ctx context.Context, kind, key string) (state.Object, error) {
	defer c.timed("get", time.Now())
	return c.Store.Get(ctx, kind, key)
}

func (c *countingStore) Version(ctx context.Context, kind, key string) (int64, error) {
	defer c.timed("version", time.Now())
	return c.Store.(state.Versioner).Version(ctx, kind, key)
}

func (c *countingStore) Delete(ctx context.Context, kind, key string, ifVersion int64) error {
	c.count("delete")
	return c.Store.Delete(ctx, kind, key, ifVersion)
}

func (c *countingStore) Append(ctx context.Context, e state.Event) (int64, error) {
	c.count(e.Type)
	return c.Store.Append(ctx, e)
}

// specFor is the release every simulated service gets: the default
// steps (1% first) with short steps, so a run sees every phase.
func specFor(service, version string, step time.Duration) release.Release {
	r := release.New(service, version)
	r.Spec.Binary = "/srv/" + service + "/" + version
	r.Spec.StepDuration = release.Duration(step)
	r.Spec.Replicas = 2
	r.Spec.ScaleDownDelay = release.Duration(time.Second)
	return r
}

// runScale drives n releases at once through the real engine on store,
// with the engine's own loop (Engine.Run: a pass a second, workers
// reconciling in parallel), as pave up runs it, for at most d, and
// measures each release's reconcile and how long each waited for it.
func runScale(ctx context.Context, backend string, st state.Store, n, workers int, d time.Duration, progress func(string)) (scaleResult, error) {
	res := scaleResult{Backend: backend, Releases: n, Workers: workers}
	s := newSim(2000, 1)
	cs := &countingStore{Store: st}
	var mu sync.Mutex
	var firstPass time.Time // set before the loop starts, under mu
	timing := func(t release.Timing) {
		mu.Lock()
		defer mu.Unlock()
		res.Reconcile = append(res.Reconcile, t.Done.Sub(t.Start))
		res.Wait = append(res.Wait, t.Done.Sub(t.Due))
		if t.Due.Before(firstPass) {
			res.FirstWait = append(res.FirstWait, t.Done.Sub(t.Due))
		} else {
			res.LaterWait = append(res.LaterWait, t.Done.Sub(t.Due))
		}
		res.Queue = append(res.Queue, t.Start.Sub(t.Due))
		if sec := int(t.Due.Sub(firstPass.Add(-time.Second)) / time.Second); sec >= 0 && sec < 3600 {
			for len(res.BySecond) <= sec {
				res.BySecond = append(res.BySecond, secondStat{})
			}
			res.BySecond[sec].N++
			res.BySecond[sec].MaxWait = max(res.BySecond[sec].MaxWait, t.Done.Sub(t.Due))
			if t.Done.Sub(t.Start) > 100*time.Millisecond {
				res.BySecond[sec].Slow++
			}
		}
		if t.Err != nil && !errors.Is(t.Err, context.Canceled) {
			res.Errors++
		}
	}
	eng := release.NewFleetEngine(cs, simCluster{s: s, replica: "bench"}.fleet(), release.WithWorkers(workers), release.WithTimings(timing))
	for i := range n {
		svc := fmt.Sprintf("svc-%04d", i)
		version := "v2"
		if i%10 == 9 { // one in ten canaries fails and is rolled back
			version = "bad2"
		}
		s.seed(svc, "v1")
		if _, err := eng.Create(ctx, specFor(svc, version, 5*time.Second)); err != nil {
			return res, fmt.Errorf("create %s: %w", svc, err)
		}
	}
	cs.reset()
	var grouped0 state.WriteStats
	if wc, ok := st.(state.WriteCounter); ok {
		grouped0 = wc.WriteStats()
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	cpu0, start := cpuTime(), time.Now()
	mu.Lock()
	firstPass = start.Add(time.Second)
	mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- eng.Run(runCtx, time.Second) }()
	// Progress is counted from the engine's own writes (countingStore),
	// not by reading every release: the bench shares the engine's CPU
	// (and, on PostgreSQL, the server's), and a read of 1,000 releases
	// every 3 s cost 6% of the process. The releases are read and
	// decoded once, at the end (tally).
	t := time.NewTicker(3 * time.Second)
	defer t.Stop()
	var err error
	for time.Since(start) < d && err == nil {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			continue
		case <-t.C:
		}
		ended, promoted := cs.progress()
		active := n - ended
		mu.Lock()
		waits := len(res.Wait)
		mu.Unlock()
		if progress != nil {
			progress(fmt.Sprintf("%s: %s, %d reconciles; %d running, %d promoted, %d rolled back", backend, time.Since(start).Round(time.Second), waits, active, promoted, ended-promoted))
		}
		if active == 0 {
			break
		}
	}
	stop()
	<-done
	res.Wall, res.CPU = time.Since(start), cpuTime()-cpu0
	res.Writes = cs.writes.Load()
	if wc, ok := st.(state.WriteCounter); ok {
		g := wc.WriteStats()
		res.Grouped = state.WriteStats{Writes: g.Writes - grouped0.Writes, Commits: g.Commits - grouped0.Commits}
	}
	cs.mu.Lock()
	res.ByType = maps.Clone(cs.byType)
	res.Calls = maps.Clone(cs.lat)
	cs.mu.Unlock()
	res.RSSPeak = rssPeak()
	if err == nil {
		_, err = tally(ctx, st, &res)
	}
	mu.Lock()
	defer mu.Unlock()
	res.Reconcile, res.Wait, res.Queue = slices.Clone(res.Reconcile), slices.Clone(res.Wait), slices.Clone(res.Queue)
	return res, err
}

// tally counts the releases by outcome and returns how many still run.
// It decodes only what it counts: the bench shares the engine's CPU, and
// decoding 1,000 whole releases a second would be measured as the
// engine's cost.
func tally(ctx context.Context, st state.Store, res *scaleResult) (active int, err error) {
	objs, err := st.List(ctx, release.StateKind)
	if err != nil {
		return 0, err
	}
	res.Promoted, res.RolledBk, res.FalseRollbacks = 0, 0, 0
	for _, o := range objs {
		var r struct {
			Spec   struct{ Version string }
			Status struct {
				Phase   release.Phase
				Message string
			}
		}
		if err := json.Unmarshal(o.Data, &r); err != nil {
			return 0, fmt.Errorf("decode release %s: %w", o.Key, err)
		}
		switch {
		case r.Status.Phase == release.Promoted:
			res.Promoted++
		case r.Status.Phase.Terminal():
			res.RolledBk++
			if r.Spec.Version == "v2" {
				res.FalseRollbacks++
				res.FalseReason = r.Status.Message
			}
		default:
			active++
		}
	}
	return active, nil
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssPeak reads VmHWM: the most resident memory this process has had.
func rssPeak() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// treeCPU is the CPU time (utime+stime) of process root and its direct
// children, alive now: the PostgreSQL server and its backends.
func treeCPU(root int) time.Duration {
	if root == 0 {
		return 0
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	for _, p := range dirs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		pid, _ := strconv.Atoi(strings.Fields(s)[0])
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if pid == root || ppid == root {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			k, _ := strconv.ParseInt(f[12], 10, 64)
			ticks += u + k
		}
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100
}
