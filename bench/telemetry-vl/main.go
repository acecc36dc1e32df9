// Command telemetry-vl measures what decides between Pave's two telemetry
// stores (docs/telemetry.md, "When to move to VictoriaLogs"): the embedded
// store and a VictoriaLogs v1.52.1 cluster (two storage nodes and one
// insert/select node, -inmemoryDataFlushInterval=1s) behind the same
// telemetry.Store interface, on the same generated lines, side by side in
// one run:
//
//   - ingest: concurrent appends of 500-line batches, each acknowledged
//     only once durable (the embedded store's fsynced WAL; VictoriaLogs'
//     flush to disk, see internal/telemetry/vlstore/write.go): lines per
//     second, CPU µs per line (this process plus the VictoriaLogs
//     processes) and the latency of one acknowledgement, p50/p99; passes
//     interleaved A B A B …;
//   - query latency p50/p99 through the interface, queries interleaved:
//     trace lookup, service=S AND status=500, a rare phrase, the newest
//     page, and a 15-minute count by status.
//
// Usage: bench/telemetry-vl/run.sh [-lines N] [-writers N] [-passes N] [-queries N]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/telemetry"
	"github.com/pave-platform/pave/internal/telemetry/vlstore"
	"github.com/pave-platform/pave/internal/telemetry/vlstore/vltest"
)

func main() {
	lines := flag.Int("lines", 200_000, "log lines to generate")
	writers := flag.Int("writers", 32, "concurrent appenders (the intake's concurrent requests)")
	batch := flag.Int("batch", 500, "lines per append")
	passes := flag.Int("passes", 4, "interleaved ingest passes per store")
	queries := flag.Int("queries", 20, "queries per class and store")
	vlBin := flag.String("victoria-logs", filepath.Join(os.Getenv("HOME"), ".cache/pave-tools/bin/victoria-logs"), "VictoriaLogs binary")
	flag.Parse()
	if err := run(*lines, *writers, *batch, *passes, *queries, *vlBin); err != nil {
		log.Fatal(err)
	}
}

type backend struct {
	name  string
	store telemetry.Store
	pids  func() []int // processes whose CPU counts besides this one
}

func run(lines, writers, batch, passes, queries int, vlBin string) error {
	ctx := context.Background()
	work, err := os.MkdirTemp("", "pave-bench-telemetry-vl-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	emb, err := telemetry.Open(ctx, telemetry.Options{Dir: filepath.Join(work, "embedded"), MaintainEvery: -1})
	if err != nil {
		return err
	}
	defer emb.Close()
	cluster, err := vltest.Launch(vlBin, filepath.Join(work, "vl"))
	if err != nil {
		return err
	}
	defer cluster.Stop()
	o, err := vlstore.ParseURL(cluster.URL())
	if err != nil {
		return err
	}
	vl, err := vlstore.Open(ctx, o)
	if err != nil {
		return err
	}
	defer vl.Close()
	nodes := append(append([]*vltest.Node{}, cluster.Storage...), cluster.Front)
	backends := []backend{
		{"embedded", emb, func() []int { return nil }},
		{"victorialogs", vl, func() []int {
			var p []int
			for _, n := range nodes {
				p = append(p, n.Pid())
			}
			return p
		}},
	}

	now := time.Now().UTC()
	data := generate(lines, now.Add(-30*time.Minute), now)
	fmt.Printf("telemetry-vl: %d lines, %d writers × %d-line appends, %d passes; VictoriaLogs cluster: 2 storage + 1 insert/select, flush interval %s\n\n",
		lines, writers, batch, passes, vltest.FlushInterval)

	// Ingest, interleaved: each pass gives each store the same slice.
	type ingestFig struct{ rate, cpuPerLine, p50, p99 float64 }
	figs := map[string][]ingestFig{}
	per := len(data) / passes
	for p := 0; p < passes; p++ {
		part := data[p*per : (p+1)*per]
		for _, b := range backends {
			start, cpu0 := time.Now(), cpuSeconds(b.pids())
			lat, err := ingest(ctx, b.store, part, writers, batch)
			if err != nil {
				return fmt.Errorf("%s: %w", b.name, err)
			}
			wall := time.Since(start).Seconds()
			cpu := cpuSeconds(b.pids()) - cpu0
			figs[b.name] = append(figs[b.name], ingestFig{float64(len(part)) / wall, cpu / float64(len(part)) * 1e6, pct(lat, 50), pct(lat, 99)})
		}
	}
	if err := emb.Flush(ctx); err != nil {
		return err
	}
	fmt.Printf("%-34s %14s %14s %10s\n", "ingest (median of passes)", "embedded", "victorialogs", "vl/emb")
	row := func(name string, f func(ingestFig) float64, unit string) {
		e, v := median(figs["embedded"], f), median(figs["victorialogs"], f)
		var ratios []float64
		for i := range figs["embedded"] {
			ratios = append(ratios, f(figs["victorialogs"][i])/f(figs["embedded"][i]))
		}
		slices.Sort(ratios)
		fmt.Printf("%-34s %14s %14s %9.2fx (min %.2f, max %.2f)\n", name, num(e)+unit, num(v)+unit, v/e, ratios[0], ratios[len(ratios)-1])
	}
	row("lines/s", func(f ingestFig) float64 { return f.rate }, "")
	row("CPU µs per line (all processes)", func(f ingestFig) float64 { return f.cpuPerLine }, "")
	row("ack latency p50 (ms)", func(f ingestFig) float64 { return f.p50 }, "")
	row("ack latency p99 (ms)", func(f ingestFig) float64 { return f.p99 }, "")

	// Queries, interleaved query by query.
	rng := rand.New(rand.NewPCG(1, 2))
	type class struct {
		name string
		run  func(telemetry.Store) error
	}
	classes := []class{
		{"trace lookup", func(s telemetry.Store) error {
			res, err := s.Trace(ctx, traceID(rng.IntN(len(data)/4)))
			if err == nil && len(res.Logs) == 0 {
				err = fmt.Errorf("trace not found")
			}
			return err
		}},
		{"service=S AND status=500", func(s telemetry.Store) error {
			_, err := s.Query(ctx, telemetry.Query{Service: services[rng.IntN(len(services))], Where: []telemetry.Match{{Key: "status", Value: "500"}}, Limit: 100})
			return err
		}},
		{"contains a rare phrase", func(s telemetry.Store) error {
			res, err := s.Query(ctx, telemetry.Query{Contains: fmt.Sprintf("fraud rule R-%04d", rng.IntN(len(data)/1000)), Limit: 100})
			if err == nil && len(res.Logs) == 0 {
				err = fmt.Errorf("rare phrase not found")
			}
			return err
		}},
		{"newest page of 100", func(s telemetry.Store) error {
			_, err := s.Query(ctx, telemetry.Query{Limit: 100})
			return err
		}},
		{"count by status, 15 min", func(s telemetry.Store) error {
			_, err := s.(telemetry.Counter).Count(ctx, telemetry.Query{From: now.Add(-15 * time.Minute)}, "status")
			return err
		}},
	}
	fmt.Printf("\n%-34s %14s %14s %10s\n", "query latency p50 / p99 (ms)", "embedded", "victorialogs", "vl/emb p50")
	for _, c := range classes {
		lat := map[string][]float64{}
		for i := 0; i < queries; i++ {
			for _, b := range backends {
				start := time.Now()
				if err := c.run(b.store); err != nil {
					return fmt.Errorf("%s: %s: %w", b.name, c.name, err)
				}
				lat[b.name] = append(lat[b.name], float64(time.Since(start).Microseconds())/1000)
			}
		}
		e, v := lat["embedded"], lat["victorialogs"]
		fmt.Printf("%-34s %14s %14s %9.2fx\n", c.name, num(pct(e, 50))+" / "+num(pct(e, 99)), num(pct(v, 50))+" / "+num(pct(v, 99)), pct(v, 50)/pct(e, 50))
	}
	return nil
}

// ingest appends lines with writers concurrent appenders and returns the
// latency of each append in ms.
func ingest(ctx context.Context, s telemetry.Store, lines []telemetry.Log, writers, batch int) ([]float64, error) {
	next := make(chan []telemetry.Log)
	go func() {
		for i := 0; i < len(lines); i += batch {
			next <- slices.Clone(lines[i:min(i+batch, len(lines))])
		}
		close(next)
	}()
	var mu sync.Mutex
	var lat []float64
	var first error
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range next {
				start := time.Now()
				err := s.AppendLogs(ctx, b)
				for errors.Is(err, telemetry.ErrBusy) { // the intake's 429: retry, as a sender would
					time.Sleep(50 * time.Millisecond)
					err = s.AppendLogs(ctx, b)
				}
				mu.Lock()
				lat = append(lat, float64(time.Since(start).Microseconds())/1000)
				if err != nil && first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return lat, first
}

var services = []string{"orders", "payments", "ledger", "fraud", "search", "users", "notify", "gateway"}

func traceID(i int) string { return fmt.Sprintf("%032x", i+1) }

// generate makes n lines between from and to: per request an access line
// and an app line (every 1000th with a rare phrase), four lines a trace.
func generate(n int, from, to time.Time) []telemetry.Log {
	rng := rand.New(rand.NewPCG(7, 9))
	out := make([]telemetry.Log, n)
	step := to.Sub(from) / time.Duration(n)
	for i := range out {
		l := telemetry.Log{Time: from.Add(time.Duration(i) * step), Service: services[rng.IntN(len(services))], Version: "v1",
			TraceID: traceID(i / 4), SpanID: fmt.Sprintf("%016x", i+1), Cluster: "east", Datacenter: "dc1"}
		if i%2 == 0 {
			l.Kind, l.Level, l.Method, l.Route, l.Status = "access", "INFO", "POST", "/v1/pay", 200
			if rng.IntN(50) == 0 {
				l.Status, l.Level = 500, "ERROR"
			}
			l.Message = "POST /v1/pay " + strconv.Itoa(l.Status)
			l.DurationMS, l.Bytes, l.Caller, l.MerchantID = float64(rng.IntN(900))/10, int64(rng.IntN(4000)), "web", fmt.Sprintf("m%d", rng.IntN(500))
		} else {
			l.Kind, l.Level = "app", "INFO"
			l.Message = "charge authorised psp=acme attempt=" + strconv.Itoa(rng.IntN(3))
			if i%1000 == 1 {
				l.Level, l.Message = "WARN", fmt.Sprintf("fraud rule R-%04d matched", i/1000)
			}
			l.Attrs = telemetry.Attrs{{Key: "psp", Value: "acme"}, {Key: "region", Value: "eu-west-1"}}
		}
		out[i] = l
	}
	return out
}

// cpuSeconds is the CPU time (user+system) of this process and pids.
func cpuSeconds(pids []int) float64 {
	total := 0.0
	for _, p := range append([]int{os.Getpid()}, pids...) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil || p == 0 {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		total += (ut + st) / 100 // USER_HZ
	}
	return total
}

func pct(v []float64, p int) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func median[T any](v []T, f func(T) float64) float64 {
	x := make([]float64, len(v))
	for i := range v {
		x[i] = f(v[i])
	}
	return pct(x, 50)
}

func num(f float64) string {
	switch {
	case f >= 100:
		return strconv.FormatFloat(f, 'f', 0, 64)
	case f >= 10:
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}
