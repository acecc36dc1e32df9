// Command scale is the control plane's scale benchmark (issue 21): the
// real release engine driving 1,000 releases at once over simulated
// clusters (a router and a target that answer at once, a metric source
// with the noise of real traffic), on SQLite and on PostgreSQL, and the
// leader failover of two replicas on PostgreSQL repeated with kill -9.
//
//	go run ./bench/scale                       # 1,000 releases on both backends, 20 failovers, lease 15s
//	go run ./bench/scale -releases 200 -failovers 3 -lease 3s   # quicker
//
// The engine runs its own loop (Engine.Run, -workers releases at once, as
// the release-workers setting of pave up). It prints, per backend, the
// reconcile latency of one release (p50/p99), the wait (from when a
// release became due — its turn each second, or its retry — until its
// reconcile finished: how late a user sees its decision), state writes
// per second, CPU and peak RSS, against the goals (p99 < 1 s,
// RSS ≤ 200 MiB), and PostgreSQL's figures as a ratio to SQLite's; then
// the takeover times and the decisions lost or repeated. The queue column
// is the part of the wait before a worker took the release (the rest is
// the reconcile), "writes per release" says what was written, by the
// timeline entry each write carried, and the wait p99 of the loop's first
// pass (all n releases due within its first second) is printed apart
// from the later ones'.
// Further lines give each store call's latency (write, version, get), the
// group commits (writes per commit) and the seconds in which some
// release waited 500 ms or more (the tail's bursts or stalls).
//
// A priority run (flock … nice -n -15 bash bench/scale/run.sh …) gives its
// nice value to its own session and to every PostgreSQL server process
// too (-session-priority, priority.go): with the kernel's per-session
// scheduling a nice value alone reaches neither.
//
//	go run ./bench/scale -backends sqlite -failovers 0 -cpuprofile cpu.out   # where the CPU goes
//	go run ./bench/scale -backends "" -failovers 20                          # the failovers only
//	go run ./bench/scale -backends postgres -failovers 0 -blockprofile b.out -trace t.out
//	                     # where the workers wait: go tool pprof -top b.out; go tool trace -pprof=net|sched t.out
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/state/pgtest"
)

func main() {
	var (
		releases  = flag.Int("releases", 1000, "concurrent releases")
		duration  = flag.Duration("duration", 3*time.Minute, "longest a scale run lasts (it ends when every release ended)")
		backends  = flag.String("backends", "sqlite,postgres", "state stores to measure (empty: none, the failovers only)")
		failovers = flag.Int("failovers", 20, "kill -9 of the leader, repeated (0: none)")
		lease     = flag.Duration("lease", 15*time.Second, "the leader-lease setting of the failover run")
		fsync     = flag.Bool("pg-fsync", true, "PostgreSQL with fsync on (as in production); off shows what the disk costs")
		workers   = flag.String("workers", strconv.Itoa(release.DefaultWorkers), "releases the engine reconciles at once (the release-workers setting); a comma-separated list measures each, side by side (1: one after another, as the engine did before)")
		replica   = flag.Bool("replica", false, "internal: run one control-plane replica")
		storeURL  = flag.String("store", "", "internal: the replica's state store")
		simURL    = flag.String("sim", "", "internal: the replica's simulated clusters")
		id        = flag.String("id", "", "internal: the replica's identity")
		cpuprof   = flag.String("cpuprofile", "", "write a CPU profile of the scale runs to this file (go tool pprof)")
		blockprof = flag.String("blockprofile", "", "write a profile of where goroutines block (channels, locks, select) to this file (go tool pprof)")
		mutexprof = flag.String("mutexprofile", "", "write a profile of contended mutexes to this file (go tool pprof)")
		tracefile = flag.String("trace", "", "write an execution trace of the scale runs to this file (go tool trace)")
		priority  = flag.Bool("session-priority", true, "when run with a negative nice value (nice -n -15), give it to the bench's session and to its PostgreSQL server's processes too (priority.go: with the kernel's per-session scheduling a nice value alone reaches neither)")
	)
	flag.Parse()
	if *replica {
		if err := runReplica(*storeURL, *simURL, *id, *lease); err != nil {
			fmt.Fprintln(os.Stderr, "replica:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signalContext()
	defer stop()
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			fmt.Fprintln(os.Stderr, "scale:", err)
			os.Exit(2)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "scale:", err)
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}
	// Off-CPU evidence: where the workers wait rather than run.
	if *blockprof != "" {
		runtime.SetBlockProfileRate(int(10 * time.Microsecond)) // sample blocking events by duration, one per 10 µs blocked
		defer writeProfile("block", *blockprof)
	}
	if *mutexprof != "" {
		runtime.SetMutexProfileFraction(1)
		defer writeProfile("mutex", *mutexprof)
	}
	if *tracefile != "" {
		f, err := os.Create(*tracefile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "scale:", err)
			os.Exit(2)
		}
		if err := trace.Start(f); err != nil {
			fmt.Fprintln(os.Stderr, "scale:", err)
			os.Exit(2)
		}
		defer trace.Stop()
	}
	var ws []int
	for _, f := range strings.Split(*workers, ",") {
		w, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || w < 1 {
			fmt.Fprintf(os.Stderr, "scale: -workers %q: want whole numbers of at least 1, comma-separated, e.g. 1,16\n", *workers)
			os.Exit(2)
		}
		ws = append(ws, w)
	}
	var bs []string // -backends "": the failovers only
	for _, b := range strings.Split(*backends, ",") {
		if b = strings.TrimSpace(b); b != "" {
			bs = append(bs, b)
		}
	}
	if err := run(ctx, os.Stdout, *releases, ws, *duration, bs, *failovers, *lease, *fsync, *priority); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}

func run(ctx context.Context, out io.Writer, n int, workers []int, d time.Duration, backends []string, failovers int, lease time.Duration, fsync, priority bool) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var pg *pgtest.Server
	needPG := failovers > 0
	for _, b := range backends {
		needPG = needPG || b == "postgres"
	}
	if needPG {
		// Durable: fsync on, as a production server runs.
		if pg, err = pgtest.Start(pgtest.Options{Durable: fsync}); err != nil {
			return err
		}
		defer pg.Close()
	}
	progress := func(s string) { fmt.Fprintln(os.Stderr, s) }
	if priority {
		pctx, stop := context.WithCancel(ctx)
		restore := keepPriority(pctx, func() int { return pidOf(pg) }, func(f string, a ...any) { progress(fmt.Sprintf(f, a...)) })
		defer restore()
		defer stop()
	}
	var results []scaleResult
	for _, b := range backends {
		for _, w := range workers {
			r, err := measure(ctx, b, pg, n, w, d, progress)
			if err != nil {
				return fmt.Errorf("%s: %w", b, err)
			}
			results = append(results, r)
		}
	}
	report(out, n, results)
	if failovers == 0 {
		return nil
	}
	return runFailovers(ctx, out, self, pg, failovers, lease, progress)
}

// measure is one scale run of n releases with the given workers on backend b.
func measure(ctx context.Context, b string, pg *pgtest.Server, n, workers int, d time.Duration, progress func(string)) (scaleResult, error) {
	var st state.Store
	switch b {
	case "sqlite":
		dir, err := os.MkdirTemp("", "pave-scale-")
		if err != nil {
			return scaleResult{}, err
		}
		defer os.RemoveAll(dir)
		if st, err = state.OpenSQLite(filepath.Join(dir, "state.db")); err != nil {
			return scaleResult{}, err
		}
	case "postgres":
		u, err := pg.NewDatabase(ctx)
		if err != nil {
			return scaleResult{}, err
		}
		if st, err = state.OpenPostgres(ctx, withPool(u, workers)); err != nil {
			return scaleResult{}, err
		}
	default:
		return scaleResult{}, fmt.Errorf("unknown backend %q: sqlite or postgres", b)
	}
	cpu0 := treeCPU(pidOf(pg))
	r, err := runScale(ctx, b, st, n, workers, d, progress)
	if b == "postgres" {
		r.ServerCPU = treeCPU(pidOf(pg)) - cpu0 // before Close ends its backends
	}
	st.Close()
	return r, err
}

// report prints the scale runs' table, against the goals, and the ratios.
func report(out io.Writer, n int, results []scaleResult) {
	if len(results) == 0 {
		return
	}
	fmt.Fprintf(out, "\n%d concurrent releases, each due every second (goal: p99 < 1s for every release's reconcile and wait, RSS <= 200 MiB)\n", n)
	fmt.Fprintf(out, "%-9s %7s %11s %10s %10s %10s %10s %10s %10s %10s %9s %7s %s\n", "backend", "workers", "reconciles", "recon p50", "recon p99", "queue p99", "wait p50", "wait p99", "writes/s", "CPU %", "RSS MiB", "goal", "outcome")
	for _, r := range results {
		// The goal read two ways: one release's reconcile, and the wait
		// from its turn until its decision (what a user sees).
		goal := "met"
		if quantile(r.Reconcile, 0.99) >= time.Second || quantile(r.Wait, 0.99) >= time.Second || r.RSSPeak > 200<<20 {
			goal = "MISSED"
		}
		fmt.Fprintf(out, "%-9s %7d %11d %10s %10s %10s %10s %10s %10.0f %10.0f %9.0f %7s %d promoted, %d rolled back (%d healthy), %d reconcile errors\n",
			r.Backend, r.Workers, len(r.Reconcile), ms(quantile(r.Reconcile, 0.5)), ms(quantile(r.Reconcile, 0.99)), ms(quantile(r.Queue, 0.99)), ms(quantile(r.Wait, 0.5)), ms(quantile(r.Wait, 0.99)),
			float64(r.Writes)/r.Wall.Seconds(), 100*r.CPU.Seconds()/r.Wall.Seconds(), float64(r.RSSPeak)/(1<<20), goal, r.Promoted, r.RolledBk, r.FalseRollbacks, r.Errors)
	}
	for _, r := range results {
		// What the writes were: the timeline entry each carried; "refresh"
		// is a write with none (the live view, a cluster's trouble).
		types := slices.Sorted(maps.Keys(r.ByType))
		var parts []string
		for _, t := range types {
			name := t
			if name == "" {
				name = "refresh"
			}
			parts = append(parts, fmt.Sprintf("%s %.1f", name, float64(r.ByType[t])/float64(r.Releases)))
		}
		fmt.Fprintf(out, "%s, %d workers: writes per release: %s\n", r.Backend, r.Workers, strings.Join(parts, ", "))
		var calls []string
		for _, c := range slices.Sorted(maps.Keys(r.Calls)) {
			l := r.Calls[c]
			calls = append(calls, fmt.Sprintf("%s %.2f per reconcile, p50 %s, p99 %s", c, float64(len(l))/float64(max(1, len(r.Reconcile))), ms(quantile(l, 0.5)), ms(quantile(l, 0.99))))
		}
		fmt.Fprintf(out, "%s, %d workers: store calls: %s\n", r.Backend, r.Workers, strings.Join(calls, "; "))
		var late []string
		for sec, st := range r.BySecond {
			if st.MaxWait >= 500*time.Millisecond {
				late = append(late, fmt.Sprintf("%ds (%d due, %d slow, longest %s)", sec, st.N, st.Slow, ms(st.MaxWait)))
			}
		}
		if len(late) > 0 {
			fmt.Fprintf(out, "%s, %d workers: the seconds with a wait of 500 ms or more, by when the reconciles were due: %s\n", r.Backend, r.Workers, strings.Join(late, ", "))
		}
		if r.Grouped.Commits > 0 {
			fmt.Fprintf(out, "%s, %d workers: group commit: %d writes in %d commits, %.1f writes per commit\n",
				r.Backend, r.Workers, r.Grouped.Writes, r.Grouped.Commits, float64(r.Grouped.Writes)/float64(r.Grouped.Commits))
		}
		if len(r.FirstWait) > 0 && len(r.LaterWait) > 0 {
			fmt.Fprintf(out, "%s, %d workers: wait p99 of the first pass (%d reconciles due in the loop's first second) %s; of the %d later ones %s\n",
				r.Backend, r.Workers, len(r.FirstWait), ms(quantile(r.FirstWait, 0.99)), len(r.LaterWait), ms(quantile(r.LaterWait, 0.99)))
		}
	}
	for _, r := range results {
		if r.FalseRollbacks > 0 {
			fmt.Fprintf(out, "%s: a healthy canary rolled back: %s\n", r.Backend, r.FalseReason)
		}
	}
	for _, r := range results {
		if r.ServerCPU > 0 {
			fmt.Fprintf(out, "%s, %d workers: the PostgreSQL server (all its processes) used %.0f%% of a CPU besides\n", r.Backend, r.Workers, 100*r.ServerCPU.Seconds()/r.Wall.Seconds())
		}
	}
	// Side by side, from the same run: each later row against the first
	// of its backend (-workers 1,16: parallel against one at a time), and
	// PostgreSQL against SQLite with the same workers.
	for i, b := range results {
		for _, a := range results[:i] {
			if a.Backend == b.Backend && a.Workers != b.Workers || a.Backend != b.Backend && a.Workers == b.Workers {
				fmt.Fprintf(out, "ratio %s/%d to %s/%d: wait p99 %.2f×, reconcile p99 %.2f×, reconciles done %.2f×, writes/s %.2f×\n", b.Backend, b.Workers, a.Backend, a.Workers,
					ratio(quantile(b.Wait, 0.99), quantile(a.Wait, 0.99)), ratio(quantile(b.Reconcile, 0.99), quantile(a.Reconcile, 0.99)),
					(float64(len(b.Reconcile))/b.Wall.Seconds())/(float64(len(a.Reconcile))/a.Wall.Seconds()),
					(float64(b.Writes)/b.Wall.Seconds())/(float64(a.Writes)/a.Wall.Seconds()))
			}
		}
	}
	fmt.Fprintln(out, "note: RSS is this whole process (engine, store client and the simulation); a later run's peak includes the earlier runs'")
}

// runFailovers kills the leader of two replicas on PostgreSQL with kill -9
// rounds times and prints the takeovers and the record's problems.
func runFailovers(ctx context.Context, out io.Writer, self string, pg *pgtest.Server, failovers int, lease time.Duration, progress func(string)) error {
	u, err := pg.NewDatabase(ctx)
	if err != nil {
		return err
	}
	logDir, err := os.MkdirTemp("", "pave-failover-")
	if err != nil {
		return err
	}
	fr, err := failover(ctx, self, u, failovers, lease, logDir, progress)
	if err != nil {
		return fmt.Errorf("failover (replica logs in %s): %w", logDir, err)
	}
	os.RemoveAll(logDir)
	fmt.Fprintf(out, "\nleader failover: 2 replicas on PostgreSQL, kill -9 of the leader %d times, leader-lease %s\n", failovers, lease)
	fmt.Fprintf(out, "takeover p50 %s, max %s (bound: the lease, %s); %d releases; decisions lost %d, repeated %d; changes onto rolled-back versions %d (goal: 0)\n",
		ms(quantile(fr.Takeovers, 0.5)), ms(quantile(fr.Takeovers, 1)), lease, fr.Releases, fr.Lost, fr.Repeated, fr.OnRolledBack)
	fmt.Fprintf(out, "peer: client-go leaderelection with its defaults (LeaseDuration 15s, RetryPeriod 2s) takes over within 17s by construction; ratio of max takeovers %.2f× (computed, not measured here)\n",
		quantile(fr.Takeovers, 1).Seconds()/17)
	if len(fr.Problems) > 0 {
		fmt.Fprintf(out, "problems:\n  %s\n", joinProblems(fr.Problems))
		return fmt.Errorf("failover: %d problems", len(fr.Problems))
	}
	return nil
}

// withPool sizes the PostgreSQL connection pool for the workers (the
// pool_max_conns of the state-store URL): one connection per worker, and a
// few for the lister and the API.
func withPool(u string, workers int) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return fmt.Sprintf("%s%spool_max_conns=%d", u, sep, workers+4)
}

func pidOf(s *pgtest.Server) int {
	if s == nil {
		return 0
	}
	return s.PID()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// writeProfile writes the named runtime profile (block, mutex) to path.
func writeProfile(name, path string) {
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup(name).WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "scale: -%sprofile: %v\n", name, err)
	}
}
