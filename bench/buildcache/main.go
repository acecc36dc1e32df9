// Command buildcache benchmarks Pave's shared Go build cache against no
// cache, Go's own warm local cache and the peer go-tool-cache (go-cacher
// client + gocached server, github.com/bradfitz/go-tool-cache), side by
// side in one run (bench/buildcache/run.sh).
//
// Workload: `go build PKGS && go vet PKGS` in the repository (PKGS is
// ./... by default, as the issue states it), each time from a fresh
// GOCACHE (a new runner) with the modules already downloaded. Variants:
//
//	cold          no cache at all
//	warm-local    the GOCACHE of a previous build on this machine
//	pave+Nms      pave cache gocacheprog, empty local tier, against a
//	              `pave cache serve` another runner filled
//	gtc+Nms       go-cacher, empty --cache-dir, against a gocached
//	              another runner filled
//
// N is the latency a proxy in the harness adds to each direction's bytes
// (half of it each way, so N is the added round trip). Passes are
// interleaved; per variant the median wall and CPU time (the go command
// and all it ran, the cache client included) are printed, and each as the
// median, min and max of its per-pass ratio to cold.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

var (
	repo      = flag.String("repo", ".", "the repository to build")
	pkgs      = flag.String("pkgs", "./...", "packages to build and vet (space-separated)")
	passes    = flag.Int("passes", 5, "interleaved passes per variant")
	paveBin   = flag.String("pave", "", "the pave binary (its cache server)")
	progBin   = flag.String("prog", "", "the pave-gocacheprog binary (the GOCACHEPROG client; default: pave cache gocacheprog)")
	coldN     = flag.Int("cold-passes", -1, "passes of the cold variant, the build that warms warm-local's GOCACHE included (default -passes): a cold build of a big workload takes minutes")
	goCacher  = flag.String("go-cacher", "", "go-tool-cache's go-cacher binary")
	gocached  = flag.String("gocached", "", "go-tool-cache's gocached binary")
	latencies = flag.String("latencies", "0,5ms,20ms", "added round-trip latencies between client and server")
	work      = flag.String("work", "", "scratch directory (default: a new one under /tmp)")
	verbs     = flag.String("verbs", "build,vet", "the go commands of the workload, in order")
	peer      = flag.Bool("peer", true, "run the go-tool-cache variants (false: Pave, cold and warm local only; the peer's fill is a cold build too)")
	warmTier  = flag.Bool("warm-from-tier", false, "make warm-local's GOCACHE from the local tier of Pave's filling runner (the same entries the go command writes; no cold build) instead of building it")
	filled    = flag.Bool("filled", false, "the Pave server in -work was filled by an earlier run of the same workload (its fill took the whole cold build): do not fill it again")
)

type variant struct {
	name string
	env  func(runner string) []string // nil: cold
}

func main() {
	flag.Parse()
	if *paveBin == "" || *goCacher == "" || *gocached == "" {
		log.Fatal("-pave, -go-cacher and -gocached are required (run.sh builds and finds them)")
	}
	dir := *work
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "pave-bench-buildcache-"); err != nil {
			log.Fatal(err)
		}
		scratch = dir
		defer os.RemoveAll(dir)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	paveAddr := freeAddr()
	paveSrv := start(ctx, *paveBin, "cache", "serve", "--addr", paveAddr, "--dir", filepath.Join(dir, "pave-server"), "--max-size", "50GiB")
	defer stop(paveSrv)
	waitHTTP("http://" + paveAddr + "/metrics")
	gtcAddr := ""
	if *peer {
		gtcAddr = freeAddr()
		gtcSrv := start(ctx, *gocached, "--listen", gtcAddr, "--cache-dir", filepath.Join(dir, "gocached"), "--max-size-gb", "50")
		defer stop(gtcSrv)
		waitTCP(gtcAddr)
	}

	paveEnv := func(url string) func(string) []string {
		return func(runner string) []string {
			prog := *paveBin + " cache gocacheprog"
			if *progBin != "" {
				prog = *progBin
			}
			// Verbose: each go command's client prints its counts, so every
			// pass shows whether the prefetch brought what the build read.
			return []string{"GOCACHEPROG=" + prog, "PAVE_CACHE_URL=" + url, "PAVE_CACHE_DIR=" + filepath.Join(runner, "tier"), "PAVE_CACHE_VERBOSE=1"}
		}
	}
	gtcEnv := func(url string) func(string) []string {
		return func(runner string) []string {
			return []string{"GOCACHEPROG=" + *goCacher + " --cache-dir=" + filepath.Join(runner, "tier") + " --cache-server=" + url}
		}
	}
	// Fill: one runner builds through each cache; a second local build
	// warms the GOCACHE of warm-local.
	warm := filepath.Join(dir, "warm-gocache")
	log.Printf("filling: pave server, gocached, and a warm local GOCACHE")
	// The build that warms warm-local's GOCACHE starts from an empty one:
	// it is a cold build, and counts as the first cold pass (a cold build
	// of ./... takes many minutes on a loaded machine).
	wall := map[string][]time.Duration{}
	cpu := map[string][]time.Duration{}
	loads := map[string][]float64{}
	fills := []func(string) []string{paveEnv("http://" + paveAddr), gtcEnv("http://" + gtcAddr), nil}
	switch {
	case *filled && !*peer:
		fills = fills[2:]
	case *filled:
		fills = fills[1:]
	case !*peer:
		fills = []func(string) []string{fills[0], nil}
	}
	if *warmTier {
		fills = fills[:len(fills)-1]
	}
	for _, fill := range fills {
		runner, _ := os.MkdirTemp(dir, "fill-")
		if fill == nil {
			runner = filepath.Dir(warm)
		}
		env := fill
		if fill != nil {
			// The filling runner waits for all its uploads.
			env = func(r string) []string { return append(fill(r), "PAVE_CACHE_CLOSE_WAIT=30m") }
		}
		l := loadAverage()
		w, c, _, err := workload(runner, env, fill == nil)
		if err != nil {
			fatalf("fill: %v", err)
		}
		log.Printf("fill %-12s wall %6.2fs cpu %6.2fs load %.1f", map[bool]string{true: "(cold)", false: "(cache)"}[fill == nil], w.Seconds(), c.Seconds(), l)
		if fill == nil {
			wall["cold"], cpu["cold"], loads["cold"] = append(wall["cold"], w), append(cpu["cold"], c), append(loads["cold"], l)
		}
	}

	if *warmTier {
		n, err := warmFromTier(dir, warm)
		if err != nil {
			fatalf("-warm-from-tier: %v", err)
		}
		log.Printf("warm-local GOCACHE made from the filling runner's tier: %d entries", n)
	}

	variants := []variant{{name: "cold"}, {name: "warm-local", env: func(string) []string { return []string{"GOCACHE=" + warm} }}}
	for _, l := range strings.Split(*latencies, ",") {
		d, err := time.ParseDuration(l)
		if l == "0" {
			d, err = 0, nil
		}
		if err != nil {
			fatalf("-latencies %q: %v", l, err)
		}
		pAddr := paveAddr
		if d > 0 {
			pAddr = latencyProxy(ctx, paveAddr, d)
		}
		ms := fmt.Sprintf("+%dms", d.Milliseconds())
		variants = append(variants, variant{"pave" + ms, paveEnv("http://" + pAddr)})
		if *peer {
			gAddr := gtcAddr
			if d > 0 {
				gAddr = latencyProxy(ctx, gtcAddr, d)
			}
			variants = append(variants, variant{"gtc" + ms, gtcEnv("http://" + gAddr)})
		}
	}

	if *coldN < 0 || *coldN > *passes {
		*coldN = *passes
	}
	for p := range *passes {
		for _, v := range variants {
			if v.name == "cold" && len(wall["cold"]) >= *coldN {
				continue
			}
			loads[v.name] = append(loads[v.name], loadAverage())
			runner, _ := os.MkdirTemp(dir, "runner-")
			w, c, counts, err := workload(runner, v.env, false)
			if err != nil {
				fatalf("pass %d, %s: %v", p+1, v.name, err)
			}
			os.RemoveAll(runner)
			wall[v.name] = append(wall[v.name], w)
			cpu[v.name] = append(cpu[v.name], c)
			log.Printf("pass %d %-12s wall %6.2fs cpu %6.2fs load %.1f%s", p+1, v.name, w.Seconds(), c.Seconds(), loads[v.name][len(loads[v.name])-1], counts)
		}
	}
	fmt.Printf("\nworkload: go {%s} %s (fresh GOCACHE per run), %d passes (cold: %d)\n", *verbs, *pkgs, *passes, len(wall["cold"]))
	fmt.Printf("%-12s %9s %9s  %-10s  %-24s %-24s %-24s\n", "variant", "wall", "cpu", "load", "cold/wall (med min..max)", "cold cpu/cpu", "wall/warm-local wall")
	for _, v := range variants {
		if len(wall[v.name]) == 0 {
			continue // -cold-passes 0
		}
		fmt.Printf("%-12s %8.2fs %8.2fs  %-10s  %-24s %-24s %-24s\n", v.name, median(wall[v.name]).Seconds(), median(cpu[v.name]).Seconds(),
			loadRange(loads[v.name]), ratio(wall["cold"], wall[v.name]), ratio(cpu["cold"], cpu[v.name]), ratio(wall[v.name], wall["warm-local"]))
	}
	fmt.Println("\nPave against go-tool-cache, per latency (gtc wall / pave wall: above 1 means Pave is faster):")
	for _, v := range variants {
		if rest, ok := strings.CutPrefix(v.name, "pave"); ok && *peer {
			fmt.Printf("  %-6s %s\n", rest, ratio(wall["gtc"+rest], wall[v.name]))
		}
	}
	fmt.Println("Pave against warm local (pave wall / warm-local wall: the goal is at most 1.3):")
	for _, v := range variants {
		if rest, ok := strings.CutPrefix(v.name, "pave"); ok {
			fmt.Printf("  %-6s %s\n", rest, ratio(wall[v.name], wall["warm-local"]))
		}
	}
}

// workload runs build then vet; wall and CPU (user+system of the go
// commands and everything they waited for: compilers, the cache client),
// and the counts Pave's client printed (PAVE_CACHE_VERBOSE), if any.
func workload(runner string, env func(string) []string, keepCache bool) (time.Duration, time.Duration, string, error) {
	gocache := filepath.Join(runner, "gocache")
	if keepCache {
		gocache = filepath.Join(runner, "warm-gocache")
	}
	e := append(os.Environ(), "GOCACHE="+gocache, "GOFLAGS=", "GOPROXY=off")
	if env != nil {
		e = append(e, env(runner)...)
	}
	var wall, cpu time.Duration
	var counts string
	for _, verb := range strings.Split(*verbs, ",") {
		cmd := exec.Command("go", append([]string{verb}, strings.Fields(*pkgs)...)...)
		cmd.Dir, cmd.Env = *repo, e
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		t0 := time.Now()
		if err := cmd.Run(); err != nil {
			return 0, 0, "", fmt.Errorf("go %s: %v\n%s", verb, err, out.String())
		}
		wall += time.Since(t0)
		cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		for line := range strings.Lines(out.String()) {
			if c, ok := strings.CutPrefix(strings.TrimSpace(line), "pave cache: "); ok && strings.Contains(c, " gets (") {
				counts += "\n    " + verb + ": " + c
			}
		}
	}
	return wall, cpu, counts, nil
}

// warmFromTier writes into gocache, in the go command's own format
// (cmd/go/internal/cache: DIR/xx/ACTION-a holding "v1 ACTION OUTPUT SIZE
// TIME", DIR/xx/OUTPUT-d the output), every entry of the local tier of the
// runner that filled Pave's server (DIR/fill-*/tier/{ac,cas}): the entries a
// local build of the same workload leaves, without a cold build. Outputs
// are hard links.
func warmFromTier(dir, gocache string) (int, error) {
	tiers, _ := filepath.Glob(filepath.Join(dir, "fill-*", "tier"))
	var root string
	for _, t := range tiers {
		if fi, err := os.Stat(filepath.Join(t, "cas")); err == nil && fi.IsDir() {
			root = t
		}
	}
	if root == "" {
		return 0, fmt.Errorf("no Pave tier under %s/fill-*/tier (run once without -warm-from-tier in this -work)", dir)
	}
	n := 0
	err := filepath.WalkDir(filepath.Join(root, "ac"), func(p string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		action := de.Name()
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		f := strings.Fields(string(b)) // go1 OUTPUT SIZE TIME
		if len(f) != 4 || f[0] != "go1" || len(action) != 64 {
			return nil // a manifest, not an action
		}
		var size, nanos int64
		fmt.Sscan(f[2], &size)
		fmt.Sscan(f[3], &nanos)
		out := f[1]
		for _, d := range []string{action[:2], out[:2]} {
			if err := os.MkdirAll(filepath.Join(gocache, d), 0o777); err != nil {
				return err
			}
		}
		dst := filepath.Join(gocache, out[:2], out+"-d")
		if err := os.Link(filepath.Join(root, "cas", out[:2], out), dst); err != nil && !os.IsExist(err) {
			return err
		}
		entry := fmt.Sprintf("v1 %s %s %20d %20d\n", action, out, size, nanos)
		n++
		return os.WriteFile(filepath.Join(gocache, action[:2], action+"-a"), []byte(entry), 0o666)
	})
	return n, err
}

// loadAverage is the one-minute load average: the machine is shared, so
// every figure is printed with the load it was measured under.
func loadAverage() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	var l float64
	fmt.Sscan(string(b), &l)
	return l
}

func loadRange(ls []float64) string {
	if len(ls) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f..%.0f", slices.Min(ls), slices.Max(ls))
}

// ratio is the median, min and max of the per-pass ratios num[i]/den[i]
// (passes of unequal count are paired from the first).
func ratio(num, den []time.Duration) string {
	var rs []float64
	for i := range min(len(num), len(den)) {
		rs = append(rs, num[i].Seconds()/den[i].Seconds())
	}
	if len(rs) == 0 {
		return "-"
	}
	slices.Sort(rs)
	return fmt.Sprintf("%.2fx (%.2f..%.2f)", rs[len(rs)/2], rs[0], rs[len(rs)-1])
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// latencyProxy forwards TCP to target, holding each chunk d/2 in each
// direction (order and bandwidth kept), so d is the added round trip.
func latencyProxy(ctx context.Context, target string, d time.Duration) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatalf("%v", err)
	}
	go func() { <-ctx.Done(); ln.Close() }()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				s, err := net.Dial("tcp", target)
				if err != nil {
					c.Close()
					return
				}
				go delayCopy(s, c, d/2)
				delayCopy(c, s, d/2)
			}()
		}
	}()
	return ln.Addr().String()
}

func delayCopy(dst, src net.Conn, delay time.Duration) {
	type chunk struct {
		due time.Time
		b   []byte
	}
	q := make(chan chunk, 1024)
	go func() {
		defer close(q)
		for {
			b := make([]byte, 64<<10)
			n, err := src.Read(b)
			if n > 0 {
				q <- chunk{time.Now().Add(delay), b[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	for range q {
	}
}

// started are the servers this run started and scratch the directory it
// made; fatalf stops and removes them before it exits, since deferred
// calls do not run on exit.
var (
	started []*exec.Cmd
	scratch string
)

func fatalf(format string, args ...any) {
	for _, cmd := range started {
		stop(cmd)
	}
	if scratch != "" {
		os.RemoveAll(scratch)
	}
	log.Fatalf(format, args...)
}

func start(ctx context.Context, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		fatalf("start %s: %v", bin, err)
	}
	started = append(started, cmd)
	return cmd
}

func stop(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatalf("%v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitHTTP(url string) {
	for range 300 {
		if res, err := http.Get(url); err == nil {
			res.Body.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	fatalf("%s did not answer", url)
}

func waitTCP(addr string) {
	for range 300 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	fatalf("%s did not answer", addr)
}
