// Command gateway benchmarks Pave's embedded gateway against nginx and
// haproxy, side by side in one run, as shared/BENCHMARKING.md asks: the
// same 99/1 split over the same upstreams (one nginx serving "v1" and
// "v2"), upstream keep-alive everywhere, wrk pinned to CPU 0 and every
// server under test (with the upstreams) pinned to CPU 1, one worker /
// thread / GOMAXPROCS=1 each, passes interleaved, CPU time read from
// /proc. It prints per-pass figures, then medians of the per-pass ratios
// to nginx with min and max.
//
//	go run ./bench/gateway            # 5 rounds of 3 s passes
//	go run ./bench/gateway -rounds 7 -duration 5s
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pave-platform/pave/internal/gateway"
)

func main() {
	child := flag.Bool("child", false, "internal: run the Pave gateway")
	addr := flag.String("addr", "", "internal: gateway listen address")
	v1 := flag.String("v1", "", "internal: v1 upstream")
	v2 := flag.String("v2", "", "internal: v2 upstream")
	churn := flag.Bool("churn", false, "internal: change weights 100 times a second")
	noLoop := flag.Bool("noloop", false, "internal: serve with the goroutine-per-connection path only")
	cpuProfile := flag.String("cpuprofile", "", "internal: write the gateway's CPU profile of its first 10 s here")
	rounds := flag.Int("rounds", 5, "interleaved rounds (each runs every peer once per connection count)")
	duration := flag.Duration("duration", 3*time.Second, "length of one wrk pass")
	flag.Parse()
	if *child {
		if *cpuProfile != "" {
			f, err := os.Create(*cpuProfile)
			if err != nil {
				log.Fatal(err)
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				log.Fatal(err)
			}
			time.AfterFunc(10*time.Second, func() { pprof.StopCPUProfile(); f.Close() })
		}
		runChild(*addr, *v1, *v2, *churn, *noLoop)
		return
	}
	if err := run(*rounds, *duration); err != nil {
		log.Fatal(err)
	}
}

// runChild serves the gateway until killed.
func runChild(addr, v1, v2 string, churn, noLoop bool) {
	g := gateway.New(gateway.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), NoEventLoop: noLoop})
	g.SetEndpoints("orders", "v1", []string{v1})
	g.SetEndpoints("orders", "v2", []string{v2})
	if err := g.SetWeights("orders", map[string]int64{"v1": 990_000, "v2": 10_000}); err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	if churn {
		go func() {
			t := time.NewTicker(10 * time.Millisecond)
			for i := 0; ; i++ {
				<-t.C
				c := int64(10_000 + (i%2)*100)
				if err := g.SetWeights("orders", map[string]int64{"v1": 1_000_000 - c, "v2": c}); err != nil {
					log.Fatal(err)
				}
			}
		}()
	}
	log.Fatal(g.Serve(context.Background(), ln))
}

func need(tools ...string) error {
	var missing []string
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s: install with `apt-get install -y nginx haproxy wrk util-linux`", strings.Join(missing, ", "))
	}
	return nil
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// server is one process under test.
type server struct {
	name string
	addr string
	cmd  *exec.Cmd
}

func (s *server) pids() []int {
	pids := []int{s.cmd.Process.Pid}
	// nginx forks its worker: count the whole process tree.
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", s.cmd.Process.Pid, s.cmd.Process.Pid)); err == nil {
		for _, f := range strings.Fields(string(b)) {
			if p, err := strconv.Atoi(f); err == nil {
				pids = append(pids, p)
			}
		}
	}
	return pids
}

// cpuTicks is utime+stime of every thread of the server's processes.
func (s *server) cpuTicks() int64 {
	var total int64
	for _, pid := range s.pids() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += ut + st
	}
	return total
}

// rssKiB is the peak resident set of the server's processes.
func (s *server) rssKiB() int64 {
	var total int64
	for _, pid := range s.pids() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				total += n
			}
		}
	}
	return total
}

func start(name, addr string, env []string, args ...string) (*server, error) {
	cmd := exec.Command("taskset", append([]string{"-c", "1"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &server{name: name, addr: addr, cmd: cmd}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s did not listen on %s", name, addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

const nginxCommon = `daemon off; master_process on; worker_processes 1; pid %[1]s/%[2]s.pid;
error_log %[1]s/%[2]s.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/%[2]s-body; proxy_temp_path %[1]s/%[2]s-proxy;
  fastcgi_temp_path %[1]s/%[2]s-fcgi; uwsgi_temp_path %[1]s/%[2]s-uwsgi; scgi_temp_path %[1]s/%[2]s-scgi;
  keepalive_requests 100000000;
  default_type text/plain;
%[3]s
}
`

type result struct {
	rps, cpuUS, p50, p99 float64
	requests             int64
	errors               int64
}

var (
	reqRE   = regexp.MustCompile(`(\d+) requests in`)
	rpsRE   = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	latRE   = regexp.MustCompile(`\s+(50|99)%\s+([\d.]+)(us|ms|s)`)
	errRE   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	non2xRE = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

func wrk(s *server, conns int, d time.Duration) (result, error) {
	before := s.cpuTicks()
	out, err := exec.Command("taskset", "-c", "0", "wrk", "-t1", fmt.Sprintf("-c%d", conns),
		fmt.Sprintf("-d%ds", int(d.Seconds())), "--latency", "-H", "Host: orders.localhost", "http://"+s.addr+"/").CombinedOutput()
	after := s.cpuTicks()
	if err != nil {
		return result{}, fmt.Errorf("wrk against %s: %v\n%s", s.name, err, out)
	}
	text := string(out)
	var r result
	if m := reqRE.FindStringSubmatch(text); m != nil {
		r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := rpsRE.FindStringSubmatch(text); m != nil {
		r.rps, _ = strconv.ParseFloat(m[1], 64)
	}
	for _, m := range latRE.FindAllStringSubmatch(text, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		switch m[3] {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if m[1] == "50" {
			r.p50 = v
		} else {
			r.p99 = v
		}
	}
	if m := errRE.FindStringSubmatch(text); m != nil {
		for _, f := range m[1:] {
			n, _ := strconv.ParseInt(f, 10, 64)
			r.errors += n
		}
	}
	if m := non2xRE.FindStringSubmatch(text); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.errors += n
	}
	if r.requests == 0 {
		return r, fmt.Errorf("wrk against %s made no requests:\n%s", s.name, text)
	}
	r.cpuUS = float64(after-before) * 1e6 / 100 / float64(r.requests) // CLK_TCK is 100
	return r, nil
}

// split sends n sequential requests and counts the answering versions.
func split(addr string, n int) (map[string]int, error) {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	got := map[string]int{}
	for range n {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		req.Host = "orders.localhost"
		resp, err := c.Do(req)
		if err != nil {
			return got, err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got[strings.TrimSpace(string(b))]++
	}
	return got, nil
}

func median(xs []float64) (med, lo, hi float64) {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2], s[0], s[len(s)-1]
}

func run(rounds int, d time.Duration) error {
	if err := need("nginx", "haproxy", "wrk", "taskset"); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "pave-bench-gateway-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	self, err := os.Executable()
	if err != nil {
		return err
	}

	up1, up2 := freePort(), freePort()
	upConf := filepath.Join(dir, "upstream.conf")
	os.WriteFile(upConf, []byte(fmt.Sprintf(nginxCommon, dir, "upstream", fmt.Sprintf(
		"  server { listen %s; location / { return 200 \"v1\\n\"; } }\n  server { listen %s; location / { return 200 \"v2\\n\"; } }", up1, up2))), 0o600)
	upstream, err := start("upstream nginx", up1, nil, "nginx", "-p", dir, "-c", upConf)
	if err != nil {
		return err
	}
	defer upstream.stop()

	nginxAddr, haproxyAddr, paveAddr, paveGoAddr, churnAddr := freePort(), freePort(), freePort(), freePort(), freePort()
	proxyConf := filepath.Join(dir, "proxy.conf")
	os.WriteFile(proxyConf, []byte(fmt.Sprintf(nginxCommon, dir, "proxy", fmt.Sprintf(`  upstream orders { server %s weight=99; server %s weight=1; keepalive 64; keepalive_requests 100000000; }
  server { listen %s; location / { proxy_pass http://orders; proxy_http_version 1.1; proxy_set_header Connection ""; } }`, up1, up2, nginxAddr))), 0o600)
	haConf := filepath.Join(dir, "haproxy.cfg")
	os.WriteFile(haConf, []byte(fmt.Sprintf(`global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind %s
  default_backend be
backend be
  balance roundrobin
  server v1 %s weight 99
  server v2 %s weight 1
`, haproxyAddr, up1, up2)), 0o600)

	nginx, err := start("nginx", nginxAddr, nil, "nginx", "-p", dir, "-c", proxyConf)
	if err != nil {
		return err
	}
	defer nginx.stop()
	haproxy, err := start("haproxy", haproxyAddr, nil, "haproxy", "-db", "-f", haConf)
	if err != nil {
		return err
	}
	defer haproxy.stop()
	pave, err := start("pave", paveAddr, []string{"GOMAXPROCS=1"}, self, "-child", "-addr", paveAddr, "-v1", up1, "-v2", up2)
	if err != nil {
		return err
	}
	defer pave.stop()
	// The same gateway with the event loop off: every connection on a
	// goroutine of the fasthttp server, as before the loop.
	paveGo, err := start("pave-go", paveGoAddr, []string{"GOMAXPROCS=1"}, self, "-child", "-noloop", "-addr", paveGoAddr, "-v1", up1, "-v2", up2)
	if err != nil {
		return err
	}
	defer paveGo.stop()
	peers := []*server{nginx, haproxy, pave, paveGo}

	fmt.Printf("split over 10,000 sequential requests (want v1=9900 v2=100):\n")
	for _, s := range peers {
		got, err := split(s.addr, 10_000)
		if err != nil {
			return fmt.Errorf("split through %s: %w", s.name, err)
		}
		fmt.Printf("  %-8s v1=%d v2=%d\n", s.name, got["v1"], got["v2"])
	}

	res := map[string]map[int][]result{}
	for _, s := range peers {
		res[s.name] = map[int][]result{}
	}
	for round := 1; round <= rounds; round++ {
		for _, conns := range []int{64, 1} {
			pd := d
			if conns == 1 {
				pd = max(d/2, time.Second)
			}
			for _, s := range peers {
				r, err := wrk(s, conns, pd)
				if err != nil {
					return err
				}
				res[s.name][conns] = append(res[s.name][conns], r)
				fmt.Printf("round %d c=%-2d %-8s %8.0f req/s  %6.1f µs CPU/req  p50 %.3f ms  p99 %.3f ms  errors %d\n",
					round, conns, s.name, r.rps, r.cpuUS, r.p50, r.p99, r.errors)
			}
		}
	}

	// 100 weight changes a second under load: a second Pave gateway that
	// reconfigures itself every 10 ms while wrk runs.
	churn, err := start("pave-churn", churnAddr, []string{"GOMAXPROCS=1"}, self, "-child", "-churn", "-addr", churnAddr, "-v1", up1, "-v2", up2)
	if err != nil {
		return err
	}
	cr, err := wrk(churn, 64, 2*d)
	churn.stop()
	if err != nil {
		return err
	}

	fmt.Printf("\nsummary over %d interleaved rounds (median [min, max] of per-pass ratios to nginx):\n", rounds)
	for _, conns := range []int{64, 1} {
		for _, s := range []*server{haproxy, pave, paveGo} {
			var rps, cpu []float64
			for i, r := range res[s.name][conns] {
				n := res["nginx"][conns][i]
				rps = append(rps, r.rps/n.rps)
				cpu = append(cpu, r.cpuUS/n.cpuUS)
			}
			m, lo, hi := median(rps)
			cm, clo, chi := median(cpu)
			fmt.Printf("  c=%-2d %-8s req/s %.2f× [%.2f, %.2f]   CPU/req %.2f× [%.2f, %.2f]\n", conns, s.name, m, lo, hi, cm, clo, chi)
		}
	}
	fmt.Println("\nlatency (median of passes), RSS peak:")
	for _, s := range peers {
		var p50a, p99a, p50b, p99b, rpsA, cpuA []float64
		for _, r := range res[s.name][1] {
			p50a, p99a = append(p50a, r.p50), append(p99a, r.p99)
		}
		for _, r := range res[s.name][64] {
			p50b, p99b = append(p50b, r.p50), append(p99b, r.p99)
			rpsA, cpuA = append(rpsA, r.rps), append(cpuA, r.cpuUS)
		}
		m := func(x []float64) float64 { v, _, _ := median(x); return v }
		fmt.Printf("  %-8s c=1 p50 %.3f ms p99 %.3f ms | c=64 p50 %.3f ms p99 %.3f ms | %6.0f req/s %5.1f µs CPU/req | RSS peak %.1f MiB\n",
			s.name, m(p50a), m(p99a), m(p50b), m(p99b), m(rpsA), m(cpuA), float64(s.rssKiB())/1024)
	}
	fmt.Printf("\nweight churn: 100 changes/s for %s at 64 connections: %d requests, %d failed, %.0f req/s\n", 2*d, cr.requests, cr.errors, cr.rps)
	return nil
}
