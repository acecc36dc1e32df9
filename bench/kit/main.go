// Command kitbench measures what the kit middleware stack adds to each
// request, against a bare net/http ServeMux serving the same route in the
// same process, in interleaved passes (bare, kit, bare, kit, ...).
//
// Per pass it reports wall time, process CPU time (user+system, all
// threads, so kit's background export is charged to kit) and heap
// allocations per request. The kit variant exports spans and logs over
// OTLP/HTTP to a real receiver: a second process started with -sink that
// accepts and discards, like a collector that keeps up. run.sh pins the two
// processes to different cores and runs the benchmark with GOMAXPROCS=1.
//
//	go run ./bench/kit -passes 5 -n 200000 -endpoint http://127.0.0.1:4399
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
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pave-platform/pave/kit"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func main() {
	sink := flag.String("sink", "", "run as the OTLP sink on this address instead of benchmarking")
	serve := flag.String("serve", "", "run as an HTTP server on this address (for the wrk passes of run.sh)")
	stack := flag.String("stack", "kit", "with -serve: bare or kit")
	endpoint := flag.String("endpoint", "", "OTLP/HTTP endpoint of a running sink (empty: export disabled)")
	passes := flag.Int("passes", 5, "interleaved passes per variant (at least 5 for a reported figure)")
	n := flag.Int("n", 200000, "requests per pass")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the benchmark passes to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	if *sink != "" {
		runSink(*sink)
		return
	}
	if *serve != "" {
		runServer(*serve, *stack, *endpoint)
		return
	}
	if *passes < 1 || *n < 1000 || *n > 10_000_000 {
		log.Fatalf("kitbench: -passes must be >= 1 and -n between 1000 and 10000000 (got %d, %d)", *passes, *n)
	}
	run(*endpoint, *passes, *n)
}

// runSink is a minimal OTLP/HTTP receiver: it reads and discards bodies.
func runSink(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatalf("kitbench sink: %v", err)
	}
	fmt.Println("sink listening on", ln.Addr())
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}), ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.Serve(ln))
}

// runServer serves the benchmark route over real HTTP with the bare mux or
// the kit stack, until SIGTERM.
func runServer(addr, stack, endpoint string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatalf("kitbench serve: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	switch stack {
	case "bare":
		mux := http.NewServeMux()
		mux.HandleFunc("GET /v1/orders/{id}", handler)
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { <-ctx.Done(); _ = srv.Close() }()
		_ = srv.Serve(ln)
	case "kit":
		spool, err := os.MkdirTemp("", "kitbench-spool-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(spool)
		cfg := kit.Config{Service: "bench", Version: "v1", Output: io.Discard, SpoolDir: spool,
			ExportDisabled: endpoint == "", OTLPEndpoint: endpoint, ShutdownTimeout: 5 * time.Second}
		app := kit.NewWithConfig(cfg)
		app.HandleFunc("GET /v1/orders/{id}", handler)
		if err := app.Serve(ctx, ln); err != nil {
			log.Fatal(err)
		}
		if n := exportDrops(app); n > 0 {
			log.Printf("kit server: exporter dropped %.0f records (queue full)", n)
		}
	default:
		log.Fatalf("kitbench: -stack must be bare or kit, not %q", stack)
	}
}

func handler(w http.ResponseWriter, r *http.Request) {
	_, _ = io.WriteString(w, "order "+r.PathValue("id"))
}

type discard struct{ h http.Header }

func (w *discard) Header() http.Header         { return w.h }
func (w *discard) Write(p []byte) (int, error) { return len(p), nil }
func (w *discard) WriteHeader(int)             {}

const yieldEvery = 16

type sample struct{ wall, cpu, allocs, bytes float64 }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		log.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pass serves n requests and, for kit, flushes the exporter inside the
// measured span so its work is counted.
func pass(h http.Handler, req *http.Request, n int, flush func()) sample {
	w := &discard{h: http.Header{}}
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	c0, t0 := cpuTime(), time.Now()
	for i := range n {
		clear(w.h)
		h.ServeHTTP(w, req)
		if i%yieldEvery == 0 {
			// A server yields at every network read and write; without
			// this, a single-P loop would starve kit's export goroutine
			// and the queue would overflow (dropped work is not measured
			// work). Both stacks yield alike.
			runtime.Gosched()
		}
	}
	if flush != nil {
		flush()
	}
	wall, cpu := time.Since(t0), cpuTime()-c0
	runtime.ReadMemStats(&m1)
	f := float64(n)
	return sample{
		wall:   float64(wall.Nanoseconds()) / f,
		cpu:    float64(cpu.Nanoseconds()) / f,
		allocs: float64(m1.Mallocs-m0.Mallocs) / f,
		bytes:  float64(m1.TotalAlloc-m0.TotalAlloc) / f,
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func run(endpoint string, passes, n int) {
	req, _ := http.NewRequest("GET", "http://bench/v1/orders/42", nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	req.Header.Set("baggage", "caller.service=checkout")
	req.Header.Set("X-Merchant-Id", "m-42")

	bare := http.NewServeMux()
	bare.HandleFunc("GET /v1/orders/{id}", handler)

	spool, err := os.MkdirTemp("", "kitbench-spool-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(spool)
	cfg := kit.Config{Service: "bench", Version: "v1", Output: io.Discard, SpoolDir: spool, ExportDisabled: endpoint == ""}
	if endpoint != "" {
		cfg.OTLPEndpoint = endpoint
	}
	app := kit.NewWithConfig(cfg)
	app.HandleFunc("GET /v1/orders/{id}", handler)
	tp := app.TracerProvider().(*sdktrace.TracerProvider)
	flush := func() {
		if err := tp.ForceFlush(context.Background()); err != nil {
			log.Fatalf("flush: %v", err)
		}
	}
	// Warm both paths (route cache, pools, connections to the sink).
	pass(bare, req, 2000, nil)
	pass(app.Handler(), req, 2000, flush)

	var b, k []sample
	fmt.Printf("GOMAXPROCS=%d, %d requests per pass, export: %s\n", runtime.GOMAXPROCS(0), n, orDisabled(endpoint))
	fmt.Printf("%-5s %-5s %12s %12s %10s %9s\n", "pass", "stack", "wall ns/op", "CPU ns/op", "allocs/op", "B/op")
	for i := range passes {
		sb := pass(bare, req, n, nil)
		sk := pass(app.Handler(), req, n, flush)
		b, k = append(b, sb), append(k, sk)
		for _, r := range []struct {
			name string
			s    sample
		}{{"bare", sb}, {"kit", sk}} {
			fmt.Printf("%-5d %-5s %12.0f %12.0f %10.1f %9.0f\n", i+1, r.name, r.s.wall, r.s.cpu, r.s.allocs, r.s.bytes)
		}
	}
	_ = app.Close(context.Background())

	var ratio, added, addedAllocs, wallAdded []float64
	for i := range b {
		ratio = append(ratio, k[i].cpu/b[i].cpu)
		added = append(added, k[i].cpu-b[i].cpu)
		wallAdded = append(wallAdded, k[i].wall-b[i].wall)
		addedAllocs = append(addedAllocs, k[i].allocs-b[i].allocs)
	}
	col := func(s []sample, f func(sample) float64) []float64 {
		var out []float64
		for _, x := range s {
			out = append(out, f(x))
		}
		return out
	}
	cpu := func(s sample) float64 { return s.cpu }
	allocs := func(s sample) float64 { return s.allocs }
	dropped := exportDrops(app)
	fmt.Println(strings.Repeat("-", 60))
	fmt.Printf("bare net/http (peer): %.0f CPU ns/op, %.1f allocs/op (median of %d passes)\n", median(col(b, cpu)), median(col(b, allocs)), passes)
	fmt.Printf("kit full stack:       %.0f CPU ns/op, %.1f allocs/op (median of %d passes)\n", median(col(k, cpu)), median(col(k, allocs)), passes)
	fmt.Printf("kit added per request: %.0f CPU ns (min %.0f, max %.0f), %.0f wall ns, %.1f allocs\n",
		median(added), slices.Min(added), slices.Max(added), median(wallAdded), median(addedAllocs))
	fmt.Printf("export latency: %s\n", exportLatency(app))
	fmt.Printf("export batches: %s; records dropped (queue full): %.0f\n", exportBatches(app), dropped)
	verdict := "met"
	if median(added) >= 5000 || median(addedAllocs) >= 25 {
		verdict = "NOT met"
	}
	fmt.Printf("goal (< 5000 ns and < 25 allocs added): %s\n", verdict)
	fmt.Printf("ratio kit/bare CPU per request: %.2fx (min %.2fx, max %.2fx)\n", median(ratio), slices.Min(ratio), slices.Max(ratio))
}

func orDisabled(s string) string {
	if s == "" {
		return "disabled"
	}
	return s
}

func exportBatches(app *kit.App) string {
	fams, err := app.Registry().Gather()
	if err != nil {
		return err.Error()
	}
	var parts []string
	for _, f := range fams {
		if f.GetName() == "kit_export_batches_total" {
			for _, m := range f.GetMetric() {
				var l []string
				for _, lp := range m.GetLabel() {
					l = append(l, lp.GetValue())
				}
				parts = append(parts, fmt.Sprintf("%s=%.0f", strings.Join(l, "/"), m.GetCounter().GetValue()))
			}
		}
	}
	return strings.Join(parts, " ")
}

func exportLatency(app *kit.App) string {
	fams, _ := app.Registry().Gather()
	for _, f := range fams {
		if f.GetName() == "kit_export_request_duration_seconds" {
			h := f.GetMetric()[0].GetHistogram()
			return fmt.Sprintf("%d requests, mean %.2f ms", h.GetSampleCount(), 1000*h.GetSampleSum()/float64(h.GetSampleCount()))
		}
	}
	return "none"
}

func exportDrops(app *kit.App) float64 {
	fams, err := app.Registry().Gather()
	if err != nil {
		return -1
	}
	var n float64
	for _, f := range fams {
		if f.GetName() == "kit_export_dropped_records_total" {
			for _, m := range f.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}
