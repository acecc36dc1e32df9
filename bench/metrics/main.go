// Command bench-metrics measures Pave's embedded metrics store
// (internal/metrics, as `pave up` configures it) side by side with a real
// Prometheus (Debian's /usr/bin/prometheus) scraping the same synthetic
// fleet at the same interval, in one run: ingest CPU per million samples,
// RSS per active series, disk bytes per sample, the latency of a
// dashboard's queries (range and instant), and whether the two answer
// every query alike. Both servers run pinned to core 1 with GOMAXPROCS=1;
// this harness (the fleet and the query client) runs on core 0.
//
// Usage: bench/metrics/run.sh [-targets 200] [-duration 3m] [-interval 5s]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pave-platform/pave/internal/metrics"
)

func main() {
	mode := flag.String("mode", "bench", "bench, or pave (internal: the store under test as its own process)")
	nTargets := flag.Int("targets", 200, "synthetic kit instances, each its own /metrics endpoint")
	duration := flag.Duration("duration", 3*time.Minute, "how long both scrape before the figures are read")
	interval := flag.Duration("interval", 5*time.Second, "scrape interval of both")
	passes := flag.Int("passes", 7, "passes of each query on each server, interleaved")
	promBin := flag.String("prometheus", "/usr/bin/prometheus", "the peer")
	dir := flag.String("dir", "", "pave mode: data directory")
	addr := flag.String("addr", "", "pave mode: API address")
	targetsFile := flag.String("targets-file", "", "pave mode: one host:port per line")
	stamp := flag.Bool("stamp", false, "the fleet stamps each sample with the time it computed it, so both scrapers store the same points (kit services do not)")
	cpuProfile := flag.String("cpuprofile", "", "write CPU profiles of Pave's store (FILE) and of the peer (FILE.prometheus) over the whole measured window")
	flag.Parse()
	if *mode == "pave" {
		if err := servePave(*dir, *addr, *targetsFile, *interval); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := bench(*nTargets, *duration, *interval, *passes, *promBin, *cpuProfile, *stamp); err != nil {
		log.Fatal(err)
	}
}

// servePave runs the store as `pave up` does (same Open options but the
// scrape interval) and serves its API and its own /metrics.
func servePave(dir, addr, targetsFile string, interval time.Duration) error {
	b, err := os.ReadFile(targetsFile)
	if err != nil {
		return err
	}
	s, err := metrics.Open(metrics.Options{Dir: dir, ScrapeInterval: interval, Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	var ts []metrics.Target
	for i, a := range strings.Fields(string(b)) {
		ts = append(ts, metrics.Target{Address: a, Labels: targetLabels(i)})
	}
	s.SetTargets(metrics.JobServices, ts)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	mux := http.NewServeMux()
	mux.Handle("/api/", s.API())
	mux.Handle("/metrics", promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile) // -cpuprofile
	srv := &http.Server{Addr: addr, Handler: mux}
	go func() { _ = srv.ListenAndServe() }()
	err = s.Run(ctx)
	_ = srv.Close()
	return errors.Join(err, s.Close())
}

// targetLabels are the labels Pave's runtime gives an instance; the peer's
// static_configs give the same.
func targetLabels(i int) map[string]string {
	return map[string]string{"service": fmt.Sprintf("svc%d", i%20), "version": "v1", "cluster": "local"}
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type server struct {
	name string
	api  string // http://host:port
	self string // its own /metrics URL
	dir  string
	cmd  *exec.Cmd
}

func (s *server) pid() int { return s.cmd.Process.Pid }

func bench(nTargets int, duration, interval time.Duration, passes int, promBin, cpuProfile string, stamp bool) error {
	if _, err := os.Stat(promBin); err != nil {
		return fmt.Errorf("the peer %s is missing: apt-get install prometheus (scripts/deps.sh installs it): %w", promBin, err)
	}
	root, err := os.MkdirTemp("", "pave-bench-metrics-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	fl, err := startFleet(nTargets, stamp)
	if err != nil {
		return err
	}
	per := fl.seriesPerTarget()
	fmt.Printf("fleet: %d targets × %d series = %d series (+5 scrape series each), scrape interval %s, %s\n", nTargets, per, nTargets*per, interval, duration)

	tf := filepath.Join(root, "targets")
	if err := os.WriteFile(tf, []byte(strings.Join(fl.addrs(), "\n")), 0o600); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	pin := func(args ...string) *exec.Cmd {
		cmd := exec.Command("taskset", append([]string{"-c", "1"}, args...)...)
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
		return cmd
	}
	pa := freeAddr()
	pave := &server{name: "pave", api: "http://" + pa, self: "http://" + pa + "/metrics", dir: filepath.Join(root, "pave")}
	pave.cmd = pin(self, "-mode", "pave", "-dir", pave.dir, "-addr", pa, "-targets-file", tf, "-interval", interval.String())

	// The peer as its documentation sets it up for this job: one scrape
	// job with static targets and the same labels, honor_labels as Pave's
	// services job, the same interval and timeout; default TSDB settings
	// (WAL compression on, 2 h blocks, 15 d retention).
	qa := freeAddr()
	prom := &server{name: "prometheus", api: "http://" + qa, self: "http://" + qa + "/metrics", dir: filepath.Join(root, "prometheus")}
	var cfg strings.Builder
	timeout := min(interval, 10*time.Second)
	fmt.Fprintf(&cfg, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\nscrape_configs:\n- job_name: services\n  honor_labels: true\n  sample_limit: %d\n  static_configs:\n",
		interval, timeout, metrics.DefaultSampleLimit)
	for i, a := range fl.addrs() {
		ls := targetLabels(i)
		fmt.Fprintf(&cfg, "  - targets: [%q]\n    labels: {service: %q, version: %q, cluster: %q}\n", a, ls["service"], ls["version"], ls["cluster"])
	}
	if err := os.MkdirAll(prom.dir, 0o700); err != nil {
		return err
	}
	cfgFile := filepath.Join(root, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg.String()), 0o600); err != nil {
		return err
	}
	prom.cmd = pin(promBin, "--config.file="+cfgFile, "--storage.tsdb.path="+prom.dir, "--web.listen-address="+qa, "--log.level=warn")

	servers := []*server{pave, prom}
	for _, s := range servers {
		logf, err := os.Create(filepath.Join(root, s.name+".log"))
		if err != nil {
			return err
		}
		s.cmd.Stdout, s.cmd.Stderr = logf, logf
		if err := s.cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", s.name, err)
		}
		defer func() {
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			_ = s.cmd.Wait()
			if b, _ := os.ReadFile(logf.Name()); len(b) > 0 && os.Getenv("BENCH_LOGS") != "" {
				fmt.Printf("--- %s log\n%s\n", s.name, b)
			}
		}()
	}
	for _, s := range servers {
		if err := waitReady(s, 60*time.Second); err != nil {
			return err
		}
	}
	// Warm-up: two intervals, so every target is scraped and every series
	// created; then the measured window.
	time.Sleep(2*interval + time.Second)
	type mark struct {
		cpu     float64
		samples float64
	}
	start := map[string]mark{}
	for _, s := range servers {
		cpu, err := cpuSeconds(s.pid())
		if err != nil {
			return err
		}
		n, err := selfMetric(s.self, "prometheus_tsdb_head_samples_appended_total")
		if err != nil {
			return err
		}
		start[s.name] = mark{cpu, n}
	}
	fmt.Printf("ingesting for %s (5 windows)...\n", duration)
	// Five windows, each a pass of both (they scrape at the same time):
	// the ratio of CPU per sample in each, reported as median, min, max.
	var ratios []float64
	prev := start
	var profiles sync.WaitGroup
	if cpuProfile != "" { // both, over the same (whole) window
		profiles.Go(func() { saveProfile(pave, cpuProfile, duration) })
		profiles.Go(func() { saveProfile(prom, cpuProfile+".prometheus", duration) })
	}
	for range 5 {
		time.Sleep(duration / 5)
		now := map[string]mark{}
		for _, s := range servers {
			cpu, _ := cpuSeconds(s.pid())
			n, err := selfMetric(s.self, "prometheus_tsdb_head_samples_appended_total")
			if err != nil {
				return err
			}
			now[s.name] = mark{cpu, n}
		}
		per := func(name string) float64 {
			return (now[name].cpu - prev[name].cpu) / (now[name].samples - prev[name].samples)
		}
		ratios = append(ratios, per("pave")/per("prometheus"))
		prev = now
	}
	profiles.Wait()
	sort.Float64s(ratios)
	type result struct {
		cpuPerM, rss, hwm, series, rssPerSeries, disk, total, bytesPerSample float64
	}
	res := map[string]result{}
	for _, s := range servers {
		cpu, _ := cpuSeconds(s.pid())
		n, err := selfMetric(s.self, "prometheus_tsdb_head_samples_appended_total")
		if err != nil {
			return err
		}
		series, _ := selfMetric(s.self, "prometheus_tsdb_head_series")
		rss, hwm := memory(s.pid())
		disk := dirBytes(s.dir)
		r := result{cpuPerM: (cpu - start[s.name].cpu) / ((n - start[s.name].samples) / 1e6), rss: rss, hwm: hwm, series: series, disk: disk, total: n}
		r.rssPerSeries = rss / series
		r.bytesPerSample = disk / n
		res[s.name] = r
		fmt.Printf("%-10s samples %.0f (%.0f in the window), series %.0f, CPU %.2f s in the window, RSS %.1f MiB (peak %.1f), disk %.1f MiB\n",
			s.name, n, n-start[s.name].samples, series, cpu-start[s.name].cpu, rss/(1<<20), hwm/(1<<20), disk/(1<<20))
	}

	// How far each scraper's timestamps are from the moments the fleet
	// computed the values (measured on a counter whose value is the time
	// it was computed); the queries' allowance follows from it.
	end := time.Now().Add(-2 * interval).Truncate(15 * time.Second)
	spread := map[string]float64{}
	for _, s := range servers {
		ds, err := jitter(s, fl, end)
		if err != nil {
			fmt.Printf("%s: jitter not measured: %v\n", s.name, err)
			spread[s.name] = 1e-3 * (60 - interval.Seconds()) / 2 // the former fixed allowance, 1e-3 in all
			continue
		}
		spread[s.name] = ds[len(ds)-1] - ds[0]
		fmt.Printf("%-10s value time − sample timestamp over %d samples: min %.1f ms, p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
			s.name, len(ds), ds[0]*1e3, ds[len(ds)/2]*1e3, ds[len(ds)*99/100]*1e3, ds[len(ds)-1]*1e3)
	}
	// rate() over 1m divides a difference of two values by the difference
	// of their timestamps, 60s less one interval apart: each side is off
	// the true rate by at most its jitter spread over that span.
	allow := max(1e-9, (spread["pave"]+spread["prometheus"])/(60-interval.Seconds()))
	fmt.Printf("allowed relative difference of a rate (both spreads / %.0f s): %.3g\n", 60-interval.Seconds(), allow)

	qs, err := runQueries(pave, prom, passes, interval, end, allow)
	if err != nil {
		return err
	}

	p, q := res["pave"], res["prometheus"]
	fmt.Printf("\n%-44s %14s %14s %8s\n", "figure", "pave", "prometheus", "ratio")
	row := func(name string, a, b float64, unit string) {
		fmt.Printf("%-44s %14s %14s %7.2f×\n", name, fmtv(a, unit), fmtv(b, unit), a/b)
	}
	row("ingest CPU per million samples", p.cpuPerM, q.cpuPerM, "s")
	fmt.Printf("%-44s %14s %14s %7.2f× (min %.2f×, max %.2f×)\n", "  per window, median of 5", "", "", ratios[2], ratios[0], ratios[4])
	row("RSS per active series", p.rssPerSeries, q.rssPerSeries, "B")
	row("RSS", p.rss, q.rss, "B")
	row("disk bytes per sample (WAL + head chunks)", p.bytesPerSample, q.bytesPerSample, "B")
	for _, r := range qs {
		row(r.name+" p50", r.pave.p50, r.prom.p50, "ms")
		row(r.name+" p99", r.pave.p99, r.prom.p99, "ms")
	}
	fmt.Println()
	diffs := 0
	for _, r := range qs {
		fmt.Printf("answers %-28s %s\n", r.name, r.same)
		if !strings.HasPrefix(r.same, "same") {
			diffs++
		}
	}
	if diffs > 0 {
		fmt.Printf("%d queries answered differently (see above)\n", diffs)
	}
	return nil
}

// saveProfile writes a CPU profile of s over d to file.
func saveProfile(s *server, file string, d time.Duration) {
	resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", s.api, int(d.Seconds())))
	if err != nil {
		log.Printf("cpu profile: %v", err)
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		err = os.WriteFile(file, b, 0o600)
	}
	if err != nil {
		log.Printf("cpu profile: %v", err)
	}
}

func fmtv(v float64, unit string) string {
	switch unit {
	case "ms":
		return fmt.Sprintf("%.2f ms", v)
	case "s":
		return fmt.Sprintf("%.3f s", v)
	}
	if v > 1<<20 {
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	}
	return fmt.Sprintf("%.2f B", v)
}

func waitReady(s *server, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if _, err := selfMetric(s.self, "prometheus_tsdb_head_series"); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer on %s within %s", s.name, s.self, d)
}

// selfMetric reads one metric from a server's own /metrics.
func selfMetric(u, name string) (float64, error) {
	resp, err := http.Get(u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	// Summed over its label sets (samples appended is by type).
	sum, found := 0.0, false
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		f := strings.Fields(line[strings.LastIndexAny(line, "} ")+1:])
		if len(f) == 0 {
			f = strings.Fields(line)[1:]
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q: %w", u, line, err)
		}
		sum, found = sum+v, true
	}
	if !found {
		return 0, fmt.Errorf("%s has no %s", u, name)
	}
	return sum, nil
}

// cpuSeconds is utime+stime of every thread of pid (the child of taskset
// is the server itself: taskset execs it).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100, nil // USER_HZ
}

func memory(pid int) (rss, hwm float64) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			v, _ := strconv.ParseFloat(f[1], 64)
			switch f[0] {
			case "VmRSS:":
				rss = v * 1024
			case "VmHWM:":
				hwm = v * 1024
			}
		}
	}
	return rss, hwm
}

func dirBytes(dir string) float64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return float64(n)
}

// ---- queries

type query struct {
	name, expr string
	rng        bool
}

// The dashboard's queries: the scaffold's RED panels per service and
// route, a top-k table, the fleet's health, and a gauge panel.
var dashboard = []query{
	{"rate by service (range 1h)", `sum by (service) (rate(http_server_requests_total[1m]))`, true},
	{"error ratio by service (range 1h)", `sum by (service) (rate(http_server_requests_total{status_class="5xx"}[1m])) / sum by (service) (rate(http_server_requests_total[1m]))`, true},
	{"p99 by service (range 1h)", `histogram_quantile(0.99, sum by (service, le) (rate(http_server_request_duration_seconds_bucket[1m])))`, true},
	{"rate by route of one service (range 1h)", `sum by (route) (rate(http_server_requests_total{service="svc3"}[1m]))`, true},
	{"top 10 instances (instant)", `topk(10, sum by (instance) (rate(http_server_requests_total[1m])))`, false},
	{"targets up (instant)", `count by (service) (up == 1)`, false},
	{"p50 of one service (instant)", `histogram_quantile(0.5, sum by (le) (rate(http_server_request_duration_seconds_bucket{service="svc3"}[1m])))`, false},
	{"queue depth by service (instant)", `sum by (service) (app_queue_depth)`, false},
}

type latency struct{ p50, p99 float64 }

type queryResult struct {
	name       string
	pave, prom latency
	same       string
}

// runQueries runs the dashboard on both at one evaluation time, end (a
// little in the past so the last scrape of every target is in on both).
func runQueries(pave, prom *server, passes int, interval time.Duration, end time.Time, allow float64) ([]queryResult, error) {
	params := func(q query) url.Values {
		if q.rng {
			return url.Values{"query": {q.expr}, "start": {fmt.Sprint(end.Add(-time.Hour).Unix())}, "end": {fmt.Sprint(end.Unix())}, "step": {"15"}}
		}
		return url.Values{"query": {q.expr}, "time": {fmt.Sprint(end.Unix())}}
	}
	var out []queryResult
	for _, q := range dashboard {
		path := "/api/v1/query"
		if q.rng {
			path = "/api/v1/query_range"
		}
		var times [2][]float64
		var bodies [2][]byte
		for range passes { // interleaved: pave, prometheus, pave, ...
			for k, s := range []*server{pave, prom} {
				t0 := time.Now()
				resp, err := http.Get(s.api + path + "?" + params(q).Encode())
				if err != nil {
					return nil, err
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					return nil, fmt.Errorf("%s %s: %d %v %s", s.name, q.name, resp.StatusCode, err, b)
				}
				times[k] = append(times[k], float64(time.Since(t0).Microseconds())/1000)
				bodies[k] = b
			}
		}
		out = append(out, queryResult{name: q.name, pave: pct(times[0]), prom: pct(times[1]), same: compare(bodies[0], bodies[1], 60+2*interval.Seconds(), allow)})
	}
	return out, nil
}

func pct(v []float64) latency {
	sort.Float64s(v)
	at := func(p float64) float64 { return v[min(len(v)-1, int(p*float64(len(v))))] }
	return latency{at(0.5), at(0.99)}
}

type answer struct {
	Data struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  []any             `json:"value"`
			Values [][]any           `json:"values"`
		} `json:"result"`
	} `json:"data"`
}

// compare says whether two answers hold the same series with the same
// values at the same timestamps. Allowed, and counted: points one side
// has and the other not, or whose rate window reaches the series' first
// samples (each scraper's first scrape of a target falls at its own
// offset in the interval); and relative differences up to allow: a
// scraper stamps a sample with its scrape's start while the fleet
// computes the value milliseconds later, by a delay that differs from
// scrape to scrape and between the scrapers (measured by jitter; with
// -stamp the fleet stamps its samples and allow is 1e-9).
func compare(a, b []byte, warm, allow float64) string {
	var x, y answer
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return "unparsable answer"
	}
	key := func(m map[string]string) string {
		ks := make([]string, 0, len(m))
		for k, v := range m {
			ks = append(ks, k+"="+v)
		}
		sort.Strings(ks)
		return strings.Join(ks, ",")
	}
	points := func(vs [][]any, v []any) map[string]string {
		out := map[string]string{}
		if v != nil {
			vs = append(vs, v)
		}
		for _, p := range vs {
			out[fmt.Sprint(p[0])] = fmt.Sprint(p[1])
		}
		return out
	}
	ys := map[string]map[string]string{}
	for _, r := range y.Data.Result {
		ys[key(r.Metric)] = points(r.Values, r.Value)
	}
	if len(x.Data.Result) != len(y.Data.Result) {
		return fmt.Sprintf("DIFFERENT: %d series vs %d", len(x.Data.Result), len(y.Data.Result))
	}
	compared, aligned, worst := 0, 0, 0.0
	for _, r := range x.Data.Result {
		other, ok := ys[key(r.Metric)]
		if !ok {
			return "DIFFERENT: series " + key(r.Metric) + " only in Pave's answer"
		}
		mine := points(r.Values, r.Value)
		// Points whose rate window reaches back to the series' first
		// samples depend on where each scraper's first scrape fell.
		first := math.Inf(1)
		for t := range mine {
			if _, ok := other[t]; ok {
				ft, _ := strconv.ParseFloat(t, 64)
				first = min(first, ft)
			}
		}
		for t, v := range mine {
			if ft, _ := strconv.ParseFloat(t, 64); len(mine) > 1 && ft < first+warm {
				aligned++
				continue
			}
			w, ok := other[t]
			if !ok {
				aligned++
				continue
			}
			fv, _ := strconv.ParseFloat(v, 64)
			fw, _ := strconv.ParseFloat(w, 64)
			if fv != fw {
				d := (fv - fw) / max(abs(fv), abs(fw))
				worst = max(worst, abs(d))
			}
			compared++
		}
		for t := range other {
			if _, ok := mine[t]; !ok {
				aligned++
			}
		}
	}
	if worst > allow {
		return fmt.Sprintf("DIFFERENT: %d points compared, largest relative difference %.3g > %.3g allowed (%d alignment or warm-up points)", compared, worst, allow, aligned)
	}
	return fmt.Sprintf("same: %d series, %d points equal (largest relative difference %.1g), %d points only on one side or in the first rate window (alignment)", len(x.Data.Result), compared, worst, aligned)
}

// jitter returns, sorted, value time − stored timestamp in seconds of
// every sample of app_cache_hits_total{cache="c0"} in the 10 minutes
// before end, whose value is the time the fleet computed it.
func jitter(s *server, fl *fleet, end time.Time) ([]float64, error) {
	q := url.Values{"query": {`app_cache_hits_total{cache="c0"}[10m]`}, "time": {fmt.Sprint(end.Unix())}}
	resp, err := http.Get(s.api + "/api/v1/query?" + q.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return nil, fmt.Errorf("%s: jitter query: %w", s.name, err)
	}
	var ds []float64
	for _, r := range a.Data.Result {
		for _, p := range r.Values {
			ts, _ := p[0].(float64)
			v, _ := strconv.ParseFloat(fmt.Sprint(p[1]), 64)
			ds = append(ds, fl.valueTime(v).Sub(time.UnixMilli(int64(math.Round(ts*1000)))).Seconds())
		}
	}
	if len(ds) == 0 {
		return nil, fmt.Errorf("%s: no samples of app_cache_hits_total{cache=\"c0\"}", s.name)
	}
	sort.Float64s(ds)
	return ds, nil
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}
