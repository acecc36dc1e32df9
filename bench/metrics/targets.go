package main

import (
	"bytes"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"time"
)

// The synthetic fleet: each target is one kit instance's /metrics with
// about 150 series — RED counters and a latency histogram for five
// routes, Go runtime and process series, in-flight gauges and some
// application gauges. Counters grow linearly with wall time (a constant
// rate per series), so two scrapers that scrape at different moments
// still agree on rate() and histogram_quantile() exactly; gauges change
// every ten minutes only, so they agree too.

var routes = []string{"/v1/orders", "/v1/orders/{id}", "/v1/pay", "/v1/items", "/healthz"}

var bounds = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

type fleet struct {
	start time.Time
	lns   []net.Listener
	// stamp writes each sample with the time its value was computed (in
	// ms), so a scraper stores exactly the point the value belongs to;
	// without it (as a kit service exposes), a scraper stamps the value
	// with its scrape's start, milliseconds before the fleet computed it.
	stamp bool
}

// seriesPerTarget is counted by writing one exposition and counting lines.
func (f *fleet) seriesPerTarget() int {
	var b bytes.Buffer
	f.write(&b, 0, time.Now())
	n := 0
	for _, line := range bytes.Split(b.Bytes(), []byte("\n")) {
		if len(line) > 0 && line[0] != '#' {
			n++
		}
	}
	return n
}

func startFleet(n int, stamp bool) (*fleet, error) {
	f := &fleet{start: time.Now(), stamp: stamp}
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		f.lns = append(f.lns, ln)
		mux := http.NewServeMux()
		mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
			var b bytes.Buffer
			now := time.Now()
			if f.stamp { // the value of exactly the stamped millisecond
				now = now.Truncate(time.Millisecond)
			}
			f.write(&b, i, now)
			out := b.Bytes()
			if f.stamp {
				out = stampLines(out, now.UnixMilli())
			}
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			_, _ = w.Write(out)
		})
		go func() { _ = http.Serve(ln, mux) }()
	}
	return f, nil
}

func (f *fleet) addrs() []string {
	out := make([]string, len(f.lns))
	for i, ln := range f.lns {
		out[i] = ln.Addr().String()
	}
	return out
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// write renders target i's exposition at time now.
func (f *fleet) write(b *bytes.Buffer, i int, now time.Time) {
	el := now.Sub(f.start).Seconds() + 3600 // as if up for an hour
	slow := float64(now.Unix() / 600)       // gauges move every 10 minutes
	b.WriteString("# TYPE http_server_requests_total counter\n")
	for r, route := range routes {
		rps := 5 + float64((i*7+r*13)%40) + float64(i)/1000 // distinct per instance: no ties in topk
		for _, sc := range []struct {
			class string
			share float64
		}{{"2xx", 0.97}, {"4xx", 0.02}, {"5xx", 0.01 * float64(1+(i+r)%3)}} {
			fmt.Fprintf(b, "http_server_requests_total{route=%q,method=\"GET\",status_class=%q} %s\n", route, sc.class, num(rps*sc.share*el))
		}
	}
	b.WriteString("# TYPE http_server_request_duration_seconds histogram\n")
	for r, route := range routes {
		rps := 5 + float64((i*7+r*13)%40) + float64(i)/1000 // distinct per instance: no ties in topk
		scale := 0.01 * float64(1+(i+r)%5)
		cum := 0.0
		for _, le := range bounds {
			// share of requests under le: 1 - exp(-le/scale)
			cum = 1 - math.Exp(-le/scale)
			fmt.Fprintf(b, "http_server_request_duration_seconds_bucket{route=%q,le=%q} %s\n", route, num(le), num(rps*cum*el))
		}
		fmt.Fprintf(b, "http_server_request_duration_seconds_bucket{route=%q,le=\"+Inf\"} %s\n", route, num(rps*el))
		fmt.Fprintf(b, "http_server_request_duration_seconds_sum{route=%q} %s\n", route, num(rps*el*scale))
		fmt.Fprintf(b, "http_server_request_duration_seconds_count{route=%q} %s\n", route, num(rps*el))
	}
	b.WriteString("# TYPE http_server_in_flight_requests gauge\n")
	for r, route := range routes {
		fmt.Fprintf(b, "http_server_in_flight_requests{route=%q} %s\n", route, num(float64((i+r)%7)+slow))
	}
	b.WriteString("# TYPE go_gc_duration_seconds summary\n")
	for _, q := range []string{"0", "0.25", "0.5", "0.75", "1"} {
		fmt.Fprintf(b, "go_gc_duration_seconds{quantile=%q} %s\n", q, num(0.0001*float64(i%9+1)))
	}
	fmt.Fprintf(b, "go_gc_duration_seconds_sum %s\ngo_gc_duration_seconds_count %s\n", num(0.002*el), num(el/10))
	for k, name := range []string{"go_goroutines", "go_threads", "go_memstats_alloc_bytes", "go_memstats_heap_alloc_bytes", "go_memstats_heap_idle_bytes",
		"go_memstats_heap_inuse_bytes", "go_memstats_heap_objects", "go_memstats_heap_released_bytes", "go_memstats_heap_sys_bytes",
		"go_memstats_mcache_inuse_bytes", "go_memstats_mcache_sys_bytes", "go_memstats_mspan_inuse_bytes", "go_memstats_mspan_sys_bytes",
		"go_memstats_next_gc_bytes", "go_memstats_other_sys_bytes", "go_memstats_stack_inuse_bytes", "go_memstats_stack_sys_bytes",
		"go_memstats_sys_bytes", "go_memstats_buck_hash_sys_bytes", "go_memstats_gc_sys_bytes", "go_memstats_last_gc_time_seconds"} {
		fmt.Fprintf(b, "# TYPE %s gauge\n%s %s\n", name, name, num(float64(1000*(k+1)+i)+slow))
	}
	for k, name := range []string{"go_memstats_alloc_bytes_total", "go_memstats_frees_total", "go_memstats_lookups_total", "go_memstats_mallocs_total"} {
		fmt.Fprintf(b, "# TYPE %s counter\n%s %s\n", name, name, num(float64(1000*(k+1))*el))
	}
	fmt.Fprintf(b, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %s\n", num(0.01*el))
	for k, name := range []string{"process_max_fds", "process_open_fds", "process_resident_memory_bytes", "process_start_time_seconds",
		"process_virtual_memory_bytes", "process_virtual_memory_max_bytes", "process_network_receive_bytes_total"} {
		fmt.Fprintf(b, "# TYPE %s gauge\n%s %s\n", name, name, num(1e6*float64(k+1)+float64(i)+slow))
	}
	b.WriteString("# TYPE app_queue_depth gauge\n")
	for q := range 20 {
		fmt.Fprintf(b, "app_queue_depth{queue=\"q%d\"} %s\n", q, num(float64((i*q)%50)+slow))
	}
	b.WriteString("# TYPE app_cache_hits_total counter\n")
	for c := range 13 {
		fmt.Fprintf(b, "app_cache_hits_total{cache=\"c%d\"} %s\n", c, num(float64(c+1)*el))
	}
}

// stampLines appends " ms" to every sample line of an exposition.
func stampLines(b []byte, ms int64) []byte {
	ts := " " + strconv.FormatInt(ms, 10)
	out := make([]byte, 0, len(b)+len(b)/8)
	for line := range bytes.Lines(b) {
		if line[0] == '#' {
			out = append(out, line...)
			continue
		}
		out = append(out, bytes.TrimSuffix(line, []byte("\n"))...)
		out = append(out, ts...)
		out = append(out, '\n')
	}
	return out
}

// valueTime is when the fleet computed a value of app_cache_hits_total
// {cache="c0"}, which is its seconds since start plus an hour (write).
func (f *fleet) valueTime(v float64) time.Time {
	return f.start.Add(time.Duration((v - 3600) * float64(time.Second)))
}
