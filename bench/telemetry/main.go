// Command telemetry benchmarks Pave's embedded telemetry store against
// VictoriaLogs v1.52.1 on the same generated access + application log
// lines (kit's JSON-lines format), side by side in one run:
//
//   - ingest: lines per CPU-second of the server process (utime+stime from
//     /proc), interleaved passes A B A B …, both servers pinned to one core
//     with GOMAXPROCS=1, the load generator on the other;
//   - bytes per line on disk after a flush;
//   - query latency p50/p99 of five classes, each through the store's own
//     query API (Pave's /api/v1/logs and /api/v1/traces, VictoriaLogs'
//     LogsQL): trace lookup, status=500 AND service=S, contains a common
//     phrase, contains a rare phrase, and a 15-minute count by status; hot
//     (servers running since ingest), cold (servers restarted and the page
//     cache of both stores' files dropped before every query), and, for
//     Pave, cold from the blob store (every partition in SeaweedFS's S3
//     behind a proxy adding 20 ms per request and per new connection,
//     SeaweedFS on the harness's core as a remote S3's CPU is not the
//     store's, the local cache emptied before each class) compared with
//     VictoriaLogs cold;
//   - peak RSS (VmHWM) of each server.
//
// Pave's server is the pave-telemetry binary (cmd/pave-telemetry), the
// supported way to run the store on its own; run.sh builds it.
//
// Usage: bench/telemetry/run.sh [-lines N] (default 400000; -full for 2M).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	lines := flag.Int("lines", 400_000, "log lines to generate")
	full := flag.Bool("full", false, "use 2,000,000 lines")
	passes := flag.Int("passes", 5, "interleaved ingest passes per store")
	lookups := flag.Int("lookups", 200, "trace lookups per phase")
	vlBin := flag.String("victoria-logs", filepath.Join(os.Getenv("HOME"), ".cache/pave-tools/bin/victoria-logs"), "VictoriaLogs binary")
	work := flag.String("work", "", "work directory (default: a temporary one, removed after)")
	flag.StringVar(&paveBin, "pave-telemetry", "/tmp/pave-bench-pave-telemetry", "the pave-telemetry binary (cmd/pave-telemetry; run.sh builds it)")
	flag.BoolVar(&pavePprof, "pprof", false, "run pave-telemetry with --pprof: go tool pprof http://ADDR/debug/pprof/profile while it runs")
	flag.StringVar(&weedBin, "weed", filepath.Join(os.Getenv("HOME"), ".cache/pave-tools/bin/weed"), "SeaweedFS binary (the S3 server of the blob phase)")
	flag.DurationVar(&s3Delay, "s3-delay", 20*time.Millisecond, "latency the proxy in front of SeaweedFS adds to every S3 request")
	flag.StringVar(&s3Core, "s3-core", "0", "the core SeaweedFS runs on: 0, the harness's (S3's CPU is not the store's machine's), or 1, the servers' (as before session 11)")
	flag.IntVar(&queriesPerClass, "queries", 20, "queries per class and phase (trace lookups: -lookups)")
	flag.BoolVar(&blobPhaseOn, "blob", true, "run the blob phase (SeaweedFS); -blob=false measures ingest, hot and cold only")
	only := flag.String("only", "", "run only the query classes whose name contains this (e.g. count, trace, rare); the default runs all")
	flag.Parse()
	onlyClasses = *only
	if *full {
		*lines = 2_000_000
	}
	if err := run(*lines, *passes, *lookups, *vlBin, *work); err != nil {
		log.Fatal(err)
	}
}

var (
	paveBin         string
	pavePprof       bool
	weedBin         string
	blobPhaseOn     bool
	s3Delay         time.Duration
	s3Core          string
	queriesPerClass int
	onlyClasses     string
)

// ---- harness ----

type proc struct {
	name string
	cmd  *exec.Cmd
	base string       // http://addr
	busy atomic.Int64 // batches refused with 429 (and sent again)
}

func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100) // USER_HZ is 100 on Linux
}

func peakRSS(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n << 10
		}
	}
	return 0
}

// fileRSS is the part of a process's resident memory that is mapped files
// (its executable's pages, mostly): shared and clean, dropped by the kernel
// under pressure, but counted in VmHWM.
func fileRSS(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n << 10
		}
	}
	return 0
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func pinned(core string, name string, args ...string) *exec.Cmd {
	if _, err := exec.LookPath("taskset"); err == nil {
		return exec.Command("taskset", append([]string{"-c", core, name}, args...)...)
	}
	return exec.Command(name, args...)
}

// coldStore is the blob store setting the Pave servers use ("" = a
// directory); set to SeaweedFS behind the latency proxy when available.
var coldStore string

// paveNeedles: pave-telemetry keeps its needle files (the default); the
// blob phase's second pass at the phrase classes runs without them.
var paveNeedles = true

// startPave runs the pave-telemetry binary, the supported way to serve
// the store on its own (cmd/pave-telemetry, docs/telemetry.md), with
// periodic maintenance off: the harness asks for flushes, compaction and
// cold moves itself (POST /api/v1/telemetry/flush and /maintain).
func startPave(dir string, coldAfter time.Duration) (*proc, error) {
	after := "never"
	if coldAfter > 0 {
		after = coldAfter.String()
	}
	store := coldStore
	if store == "" {
		abs, err := filepath.Abs(filepath.Join(dir, "..", "pave-blob"))
		if err != nil {
			return nil, err
		}
		store = "dir:" + abs
	}
	args := []string{"--data-dir", dir, "--addr", "127.0.0.1:0", "--cold-after", after, "--maintain-every", "never", "--cold-store", store, "--log-level", "warn"}
	if pavePprof {
		args = append(args, "--pprof")
	}
	if !paveNeedles {
		args = append(args, "--needle-files=false")
	}
	cmd := pinned("1", paveBin, args...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	buf := make([]byte, 64)
	n, err := out.Read(buf)
	if err != nil {
		return nil, fmt.Errorf("pave-telemetry did not start: %w", err)
	}
	p := &proc{name: "pave", cmd: cmd, base: "http://" + strings.TrimSpace(string(buf[:n]))}
	if pavePprof {
		fmt.Printf("  pave-telemetry profiles: go tool pprof %s/debug/pprof/profile?seconds=30\n", p.base)
	}
	return p, nil
}

func startVL(bin, dir string) (*proc, error) {
	addr := freePort()
	cmd := pinned("1", bin, "-storageDataPath", dir, "-httpListenAddr", addr, "-loggerLevel", "ERROR", "-retentionPeriod", "100y")
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{name: "victorialogs", cmd: cmd, base: "http://" + addr}
	for i := 0; i < 200; i++ {
		if resp, err := http.Get(p.base + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, errors.New("VictoriaLogs did not become healthy")
}

func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// pid is the server's pid (taskset execs, so it is the same process).
func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) ingestURL() string {
	if p.name == "pave" {
		return p.base + "/v1/jsonlines"
	}
	return p.base + "/insert/jsonline?_stream_fields=service&_msg_field=msg&_time_field=time"
}

// send posts batches with 4 concurrent senders; it returns the server CPU used.
func (p *proc) send(batches [][]byte) (time.Duration, error) {
	before := cpuTime(p.pid())
	ch := make(chan []byte)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	client := &http.Client{Timeout: time.Minute}
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range ch {
				for attempt := 0; ; attempt++ {
					resp, err := client.Post(p.ingestURL(), "application/x-ndjson", bytes.NewReader(b))
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode == 429 && attempt < 100 {
							p.busy.Add(1)
							time.Sleep(100 * time.Millisecond)
							continue
						}
						if resp.StatusCode != 200 && resp.StatusCode != 204 {
							err = fmt.Errorf("%s ingest: %s", p.name, resp.Status)
						}
					}
					if err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
					}
					break
				}
			}
		}()
	}
	for _, b := range batches {
		ch <- b
	}
	close(ch)
	wg.Wait()
	// Count the work each store defers (VictoriaLogs merges in the
	// background, Pave writes blocks on flush): flush, then wait until the
	// process is idle.
	if err := p.flush(); err != nil && firstErr == nil {
		firstErr = err
	}
	p.settle()
	return cpuTime(p.pid()) - before, firstErr
}

// settle waits until the server used less than 10ms of CPU in 500ms.
func (p *proc) settle() {
	for i := 0; i < 40; i++ {
		c := cpuTime(p.pid())
		time.Sleep(500 * time.Millisecond)
		if cpuTime(p.pid())-c < 10*time.Millisecond {
			return
		}
	}
}

func (p *proc) flush() error {
	var u string
	if p.name == "pave" {
		u = p.base + "/api/v1/telemetry/flush"
	} else {
		u = p.base + "/internal/force_flush"
	}
	req, _ := http.NewRequest(http.MethodPost, u, nil)
	if p.name != "pave" {
		req.Method = http.MethodGet
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s flush: %s %s", p.name, resp.Status, b)
	}
	return nil
}

func (p *proc) compact() error {
	resp, err := http.Post(p.base+"/api/v1/telemetry/maintain", "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("pave compact: %s", resp.Status)
	}
	return nil
}

// lookup fetches every line of a trace and returns how many came back.
func (p *proc) lookup(trace string) (int, time.Duration, error) {
	var u string
	if p.name == "pave" {
		u = p.base + "/api/v1/traces/" + trace
	} else {
		u = p.base + "/select/logsql/query?query=" + url.QueryEscape(`trace_id:="`+trace+`"`)
	}
	start := time.Now()
	resp, err := http.Get(u)
	if err != nil {
		return 0, 0, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err != nil || resp.StatusCode != 200 {
		return 0, d, fmt.Errorf("%s lookup %s: %v %s %s", p.name, trace, err, resp.Status, b)
	}
	return bytes.Count(b, []byte(trace)), d, nil
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// ---- data ----

type dataset struct {
	batches    [][]byte
	traces     []string // ids to look up
	perTr      map[string]int
	rare       []string // rare message phrases, each in a few lines
	rareN      map[string]int
	lines      int
	start, end time.Time // line k (from 1) is at start + k*step
	step       time.Duration
}

// linesIn counts the lines with from <= time < to.
func (ds *dataset) linesIn(from, to time.Time) int {
	n := 0
	for k := 1; k <= ds.lines; k++ {
		t := ds.start.Add(time.Duration(k) * ds.step)
		if !t.Before(from) && t.Before(to) {
			n++
		}
	}
	return n
}

var services = []string{"orders", "payments", "ledger", "accounts", "risk", "notify", "search", "catalog", "auth", "gateway"}
var routes = []string{"/v1/orders/{id}", "/v1/orders", "/v1/pay", "/v1/refunds/{id}", "/v1/accounts/{id}", "/healthz", "/v1/search"}
var msgs = []string{"charge authorized", "cache miss", "retrying upstream call", "merchant limit checked", "ledger entry written", "psp timeout", "validation failed"}

func generate(n int, end time.Time) dataset {
	r := rand.New(rand.NewPCG(42, 7))
	ds := dataset{perTr: map[string]int{}, rareN: map[string]int{}}
	// Rare messages come from their own generator, so the rest of the data
	// is the same as before they were added.
	rareR := rand.New(rand.NewPCG(1, 2))
	start := end.Add(-6 * time.Hour)
	step := 6 * time.Hour / time.Duration(n)
	ds.start, ds.step = start, step
	var buf bytes.Buffer
	inBatch := 0
	t := start
	for ds.lines < n {
		var tid [16]byte
		for i := range tid {
			tid[i] = byte(r.Uint32())
		}
		trace := fmt.Sprintf("%x", tid)
		caller := services[r.IntN(len(services))]
		svc := services[r.IntN(len(services))]
		merchant := fmt.Sprintf("m%05d", r.IntN(20000))
		cluster := []string{"east", "west"}[r.IntN(2)]
		dc := []string{"dc1", "dc2"}[r.IntN(2)]
		apps := 1 + r.IntN(3)
		for a := 0; a <= apps && ds.lines < n; a++ {
			t = t.Add(step)
			span := fmt.Sprintf("%016x", r.Uint64())
			if a < apps {
				level, msg := []string{"INFO", "INFO", "INFO", "WARN", "ERROR"}[r.IntN(5)], msgs[r.IntN(len(msgs))]
				if rareR.IntN(5000) == 0 {
					phrase := fmt.Sprintf("fraud rule R-%04d", rareR.IntN(20))
					if ds.rareN[phrase] == 0 {
						ds.rare = append(ds.rare, phrase)
					}
					ds.rareN[phrase]++
					msg = "card declined: " + phrase
				}
				fmt.Fprintf(&buf, `{"time":"%s","level":"%s","msg":"%s","service":"%s","version":"v%d","trace_id":"%s","span_id":"%s","attempt":%d,"psp":"acme","amount":%d}`+"\n",
					t.Format(time.RFC3339Nano), level, msg, svc, 1+r.IntN(3), trace, span, r.IntN(3), r.IntN(100000))
			} else {
				status := []int{200, 200, 200, 200, 201, 404, 500}[r.IntN(7)]
				fmt.Fprintf(&buf, `{"time":"%s","trace_id":"%s","span_id":"%s","service":"%s","version":"v%d","method":"%s","route":"%s","status":%d,"duration_ms":%.3f,"bytes":%d,"caller":"%s","cluster":"%s","datacenter":"%s","merchant_id":"%s"}`+"\n",
					t.Format(time.RFC3339Nano), trace, span, svc, 1+r.IntN(3), []string{"GET", "POST"}[r.IntN(2)], routes[r.IntN(len(routes))], status,
					r.ExpFloat64()*20, r.IntN(5000), caller, cluster, dc, merchant)
			}
			ds.lines++
			ds.perTr[trace]++
			inBatch++
			if inBatch == 2000 {
				ds.batches = append(ds.batches, append([]byte(nil), buf.Bytes()...))
				buf.Reset()
				inBatch = 0
			}
		}
		if r.IntN(max(1, n/2000)) == 0 || len(ds.traces) < 50 && r.IntN(100) == 0 {
			ds.traces = append(ds.traces, trace)
		}
	}
	if buf.Len() > 0 {
		ds.batches = append(ds.batches, buf.Bytes())
	}
	ds.end = t
	return ds
}

// ---- report ----

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func pct(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	i := int(p * float64(len(s)-1))
	return s[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

func run(lines, passes, lookups int, vlBin, work string) error {
	if _, err := os.Stat(vlBin); err != nil {
		return fmt.Errorf("VictoriaLogs is missing at %s: run bench/telemetry/run.sh, which installs it with go install", vlBin)
	}
	if work == "" {
		d, err := os.MkdirTemp("", "pave-bench-telemetry-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		work = d
	}
	paveDir, vlDir := filepath.Join(work, "pave"), filepath.Join(work, "vl")
	var sw *seaweed
	if blobPhaseOn {
		var err error
		if sw, err = startSeaweed(weedBin, s3Delay); err != nil {
			return err
		}
		defer sw.stop()
		coldStore = sw.setting()
	}
	fmt.Printf("generating %d lines…\n", lines)
	ds := generate(lines, time.Now().Add(-3*time.Hour).Truncate(time.Hour))
	if len(ds.traces) > lookups {
		ds.traces = ds.traces[:lookups]
	}
	pave, err := startPave(paveDir, -1)
	if err != nil {
		return err
	}
	vl, err := startVL(vlBin, vlDir)
	if err != nil {
		pave.stop()
		return err
	}
	stopAll := func() { pave.stop(); vl.stop() }
	// Each server's RSS before any data: the executable's pages and what
	// its packages' initialisation allocates (pave-telemetry links the
	// store alone; `pave up` links the whole control plane, see the docs).
	time.Sleep(time.Second)
	paveIdleRSS, vlIdleRSS := peakRSS(pave.pid()), peakRSS(vl.pid())

	// Ingest, interleaved: pass i sends the i-th slice of the data to each.
	fmt.Printf("ingest: %d interleaved passes per store, 4 senders, servers on core 1 with GOMAXPROCS=1\n", passes)
	type pass struct {
		lines  int
		pc, vc time.Duration
	}
	var done []pass
	per := (len(ds.batches) + passes - 1) / passes
	for i := 0; i < passes; i++ {
		lo, hi := i*per, min((i+1)*per, len(ds.batches))
		if lo >= hi {
			break
		}
		n := 0
		for _, b := range ds.batches[lo:hi] {
			n += bytes.Count(b, []byte{'\n'})
		}
		pc, err := pave.send(ds.batches[lo:hi])
		if err != nil {
			stopAll()
			return err
		}
		vc, err := vl.send(ds.batches[lo:hi])
		if err != nil {
			stopAll()
			return err
		}
		done = append(done, pass{n, pc, vc})
		pr, vr := float64(n)/pc.Seconds(), float64(n)/vc.Seconds()
		fmt.Printf("  pass %d: %d lines  pave %.0f lines/CPU-s  victorialogs %.0f lines/CPU-s  ratio %.2f (before compaction)\n", i+1, n, pr, vr, pr/vr)
	}
	paveBusy, vlBusy := pave.busy.Load(), vl.busy.Load()
	paveIngestRSS, vlIngestRSS := peakRSS(pave.pid()), peakRSS(vl.pid())
	paveFileRSS, vlFileRSS := fileRSS(pave.pid()), fileRSS(vl.pid())
	// Compaction (Pave re-encodes its flushed blocks into full ones) and
	// VictoriaLogs' final flush are ingest work too: measured once at the
	// end, then shared among the passes by their lines, so the ratio
	// counts everything each store spent to have the data settled on disk.
	before := cpuTime(pave.pid())
	if err := pave.compact(); err != nil {
		stopAll()
		return err
	}
	flushCPU := cpuTime(pave.pid()) - before
	before = cpuTime(vl.pid())
	if err := vl.flush(); err != nil {
		stopAll()
		return err
	}
	vl.settle()
	vlFlushCPU := cpuTime(vl.pid()) - before
	var ratios, paveRates, vlRates []float64
	total := 0
	for _, p := range done {
		total += p.lines
	}
	for _, p := range done {
		share := float64(p.lines) / float64(total)
		pc := p.pc + time.Duration(share*float64(flushCPU))
		vc := p.vc + time.Duration(share*float64(vlFlushCPU))
		pr, vr := float64(p.lines)/pc.Seconds(), float64(p.lines)/vc.Seconds()
		paveRates, vlRates, ratios = append(paveRates, pr), append(vlRates, vr), append(ratios, pr/vr)
	}

	classes := queryClasses(&ds)
	if onlyClasses != "" {
		classes = slices.DeleteFunc(classes, func(c queryClass) bool { return !strings.Contains(c.name, onlyClasses) })
		if len(classes) == 0 {
			return fmt.Errorf("-only %q matches no query class", onlyClasses)
		}
	}
	// results[phase][class] = per-query latencies of pave and victorialogs.
	type pair struct{ p, v []time.Duration }
	results := map[string]map[string]*pair{}
	queriesOf := func(c *queryClass) int {
		if c.name == "trace lookup" {
			return len(ds.traces)
		}
		return min(queriesPerClass, len(ds.traces))
	}
	// paveNow is the Pave server of the moment (the blob phase restarts it).
	paveNow := func() *proc { return pave }
	phase := func(name string, b *proc, before func(c *queryClass) error) error {
		results[name] = map[string]*pair{}
		for ci := range classes {
			c := &classes[ci]
			if err := before(c); err != nil {
				return err
			}
			pr := &pair{}
			results[name][c.name] = pr
			for i := 0; i < queriesOf(c); i++ {
				if name != "hot" {
					evictPageCache(paveDir, vlDir)
				}
				np, dp, err := paveNow().ask(c, i)
				if err != nil {
					return err
				}
				if name != "hot" {
					evictPageCache(paveDir, vlDir)
				}
				nv, dv, err := b.ask(c, i)
				if err != nil {
					return err
				}
				want := c.want(i)
				switch {
				case c.name == "trace lookup" && (np < want || nv < want):
					return fmt.Errorf("%s %s #%d: pave found %d, victorialogs %d, want %d", name, c.name, i, np, nv, want)
				case c.name != "trace lookup" && want >= 0 && !c.whole && (np != min(want, pageLimit) || nv != min(want, pageLimit)),
					c.whole && (np != want || nv != want):
					return fmt.Errorf("%s %s #%d: pave found %d, victorialogs %d, want %d", name, c.name, i, np, nv, want)
				case want < 0 && np != nv:
					return fmt.Errorf("%s %s #%d: pave found %d lines, victorialogs %d", name, c.name, i, np, nv)
				}
				pr.p, pr.v = append(pr.p, dp), append(pr.v, dv)
			}
		}
		return nil
	}
	noop := func(*queryClass) error { return nil }
	if err := phase("hot", vl, noop); err != nil {
		stopAll()
		return err
	}
	paveRSS, vlRSS := peakRSS(pave.pid()), peakRSS(vl.pid())
	stopAll()
	// Sizes after a clean stop, when both have written everything.
	paveBytes := dirSize(filepath.Join(paveDir, "hot")) + dirSize(filepath.Join(paveDir, "wal"))
	vlBytes := dirSize(vlDir)

	// Cold: restarted servers (no in-process caches) and, before every
	// query, the page cache of both stores' files dropped.
	if pave, err = startPave(paveDir, -1); err != nil {
		return err
	}
	if vl, err = startVL(vlBin, vlDir); err != nil {
		pave.stop()
		return err
	}
	if err := phase("cold", vl, noop); err != nil {
		stopAll()
		return err
	}
	paveColdRSS, vlColdRSS := peakRSS(pave.pid()), peakRSS(vl.pid())
	stopAll()

	blobRSS := int64(0)
	// What each class fetched from the blob store (GETs whole or ranged,
	// and bytes), from the store's own counters, read before each restart.
	type blobRead struct {
		phase, class string
		reads, bytes int64
		needleReads  int64
		queries      int
	}
	blobPhaseName := "blob"
	var needleBytes int64
	var blobReads []blobRead
	var blobBytes int64
	if blobPhaseOn {
		// Cold from the blob store: every partition moved to S3 (SeaweedFS
		// behind the latency proxy); for each class Pave starts with an empty
		// local cache, and page caches are dropped before every query.
		if pave, err = startPave(paveDir, time.Minute); err != nil {
			return err
		}
		req, _ := http.NewRequest(http.MethodPost, pave.base+"/api/v1/telemetry/maintain", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			pave.stop()
			return fmt.Errorf("move to the blob store: %v %v", err, resp)
		}
		resp.Body.Close()
		pave.stop()
		if vl, err = startVL(vlBin, vlDir); err != nil {
			return err
		}
		pave = nil
		var blobClass *queryClass
		noteBlobReads := func() {
			if pave == nil || blobClass == nil {
				return
			}
			var st struct {
				Reads       int64 `json:"blob_reads"`
				Bytes       int64 `json:"blob_bytes_read"`
				NeedleReads int64 `json:"needle_reads"`
				NeedleBytes int64 `json:"needle_bytes"`
			}
			if resp, err := http.Get(pave.base + "/api/v1/telemetry/stats"); err == nil {
				json.NewDecoder(resp.Body).Decode(&st)
				resp.Body.Close()
			}
			blobReads = append(blobReads, blobRead{blobPhaseName, blobClass.name, st.Reads, st.Bytes, st.NeedleReads, queriesOf(blobClass)})
			needleBytes = max(needleBytes, st.NeedleBytes)
		}
		blobPhase := func(c *queryClass) error {
			if pave != nil {
				noteBlobReads()
				blobRSS = max(blobRSS, peakRSS(pave.pid()))
				pave.stop()
			}
			blobClass = c
			os.RemoveAll(filepath.Join(paveDir, "cache"))
			pave, err = startPave(paveDir, -1)
			return err
		}
		err = phase("blob", vl, blobPhase)
		if pave != nil {
			noteBlobReads()
			blobRSS = max(blobRSS, peakRSS(pave.pid()))
			pave.stop()
			pave = nil
		}
		// The phrase classes again without the needle files (pave-telemetry
		// --needle-files=false removes them), so the report says what S3
		// alone costs a rare phrase as well as what Pave answers.
		all := classes
		classes = slices.DeleteFunc(slices.Clone(classes), func(c queryClass) bool { return !strings.HasPrefix(c.name, "contains") })
		if err == nil && len(classes) > 0 {
			paveNeedles, blobPhaseName = false, "blob-s3"
			err = phase("blob-s3", vl, blobPhase)
			if pave != nil {
				noteBlobReads()
				pave.stop()
			}
		}
		classes = all
		vl.stop()
		if err != nil {
			return err
		}
		blobBytes = sw.bytes()
	}

	fmt.Println()
	fmt.Printf("ingest per CPU-second, compaction and final flush included (median of %d passes; ratio min..max):\n", len(ratios))
	fmt.Printf("  pave %.0f lines/CPU-s, victorialogs %.0f lines/CPU-s, ratio %.2f× (%.2f..%.2f)\n",
		median(paveRates), median(vlRates), median(ratios), minF(ratios), maxF(ratios))
	fmt.Printf("  of which at the end: pave compaction %s CPU, victorialogs flush %s CPU\n", flushCPU, vlFlushCPU)
	fmt.Printf("  batches refused with 429 and sent again: pave %d, victorialogs %d (of %d)\n", paveBusy, vlBusy, len(ds.batches))
	fmt.Printf("bytes per line on disk: pave %.1f, victorialogs %.1f, ratio %.2f× (pave in the blob store: %.1f)\n",
		float64(paveBytes)/float64(ds.lines), float64(vlBytes)/float64(ds.lines), float64(paveBytes)/float64(vlBytes), float64(blobBytes)/float64(ds.lines))
	fmt.Printf("queries (latency per query, pave beside victorialogs, ratio of medians; cold = restarted, page cache dropped before each query; blob = pave reading S3 with %s added per request and per new connection, SeaweedFS on core %s, victorialogs cold):\n", s3Delay, s3Core)
	for _, ph := range []string{"hot", "cold", "blob", "blob-s3"} {
		for _, c := range classes {
			r := results[ph][c.name]
			if r == nil || len(r.p) == 0 {
				continue
			}
			// Each query was asked of both, one after the other: the
			// per-query ratios' median and range are the spread.
			per := make([]float64, len(r.p))
			for i := range r.p {
				per[i] = float64(r.p[i]) / float64(r.v[i])
			}
			fmt.Printf("  %-7s %-34s n=%-3d pave p50 %9s p99 %9s  victorialogs p50 %9s p99 %9s  ratio p50 %.2f× p99 %.2f×  per-query ratio median %.2f× (%.2f..%.2f)\n", ph, c.name, len(r.p),
				ms(pct(r.p, .5)), ms(pct(r.p, .99)), ms(pct(r.v, .5)), ms(pct(r.v, .99)),
				float64(pct(r.p, .5))/float64(pct(r.v, .5)), float64(pct(r.p, .99))/float64(pct(r.v, .99)), median(per), minF(per), maxF(per))
		}
	}
	for _, r := range blobReads {
		fmt.Printf("  %-7s %-34s pave fetched %.1f GETs and %.1f KiB per query from S3; %.1f blocks per query from needle files\n", r.phase, r.class,
			float64(r.reads)/float64(r.queries), float64(r.bytes)/1024/float64(r.queries), float64(r.needleReads)/float64(r.queries))
	}
	if blobPhaseOn {
		fmt.Printf("pave's needle files (the cold blocks' rare lines, on local disk): %.2f bytes per line\n", float64(needleBytes)/float64(ds.lines))
	}
	fmt.Printf("peak RSS cold queries: pave %.1f MiB, victorialogs %.1f MiB, ratio %.2f×; pave reading the blob store %.1f MiB\n",
		float64(paveColdRSS)/(1<<20), float64(vlColdRSS)/(1<<20), float64(paveColdRSS)/float64(vlColdRSS), float64(blobRSS)/(1<<20))
	fmt.Printf("peak RSS during ingest: pave %.1f MiB, victorialogs %.1f MiB, ratio %.2f×\n",
		float64(paveIngestRSS)/(1<<20), float64(vlIngestRSS)/(1<<20), float64(paveIngestRSS)/float64(vlIngestRSS))
	fmt.Printf("  of which mapped files (the executable's pages) after ingest: pave %.1f MiB, victorialogs %.1f MiB\n",
		float64(paveFileRSS)/(1<<20), float64(vlFileRSS)/(1<<20))
	fmt.Printf("  at start, before any data: pave %.1f MiB, victorialogs %.1f MiB; growth during ingest: pave %.1f MiB, victorialogs %.1f MiB, ratio %.2f×\n",
		float64(paveIdleRSS)/(1<<20), float64(vlIdleRSS)/(1<<20), float64(paveIngestRSS-paveIdleRSS)/(1<<20), float64(vlIngestRSS-vlIdleRSS)/(1<<20),
		float64(paveIngestRSS-paveIdleRSS)/float64(vlIngestRSS-vlIdleRSS))
	fmt.Printf("peak RSS with compaction and hot lookups: pave %.1f MiB, victorialogs %.1f MiB, ratio %.2f×\n",
		float64(paveRSS)/(1<<20), float64(vlRSS)/(1<<20), float64(paveRSS)/float64(vlRSS))
	return nil
}

func minF(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = min(m, x)
	}
	return m
}

func maxF(v []float64) float64 {
	m := v[0]
	for _, x := range v {
		m = max(m, x)
	}
	return m
}
