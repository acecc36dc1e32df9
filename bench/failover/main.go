// Command failover measures active-active failover in embedded mode: two
// clusters (`pave up --clusters seoul,busan`) serve examples/hello at a
// fixed rate (default 1000 req/s) through an edge; busan is drained at
// 50%/s and brought back, then lost (its gateway and instances killed).
// It counts failed requests during each event and the time until the
// traffic was moved, for Pave's edge gateway and fleet controller, and for
// the peer: haproxy as the edge in front of the same cluster gateways,
// with retries (retry-on all-retryable-errors, 502/503 included, as Pave's
// edge retries gateway-made 502/503; L7 retries for idempotent requests
// only, as Pave),
// redispatch and health checks every 500 ms (fall 3); Pave's fleet
// controller probes the same way, over the network (no in-process
// knowledge of the loss), every 500 ms, 3 misses; haproxy's
// drain is done through its runtime API at the same pace. Passes alternate
// (Pave, haproxy, Pave, ...); a fresh `pave up` serves each pass.
//
//	bench/failover/run.sh [-rounds 3] [-rate 1000]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pave-platform/pave/internal/loadgen"
	"github.com/pave-platform/pave/internal/server"
)

type result struct {
	drainSent, drainFailed uint64
	lossSent, lossFailed   uint64
	shift                  time.Duration
}

func main() {
	rounds := flag.Int("rounds", 3, "passes per edge")
	rate := flag.Int("rate", 1000, "requests per second")
	flag.Parse()
	if err := run(*rounds, *rate); err != nil {
		fmt.Fprintln(os.Stderr, "failover bench:", err)
		os.Exit(1)
	}
}

func run(rounds, rate int) error {
	tmp, err := os.MkdirTemp("", "pave-failover-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	pave, hello := filepath.Join(tmp, "pave"), filepath.Join(tmp, "hello")
	for bin, pkg := range map[string]string{pave: "./cmd/pave", hello: "./examples/hello"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	var pv, hp []result
	for i := 0; i < rounds; i++ {
		for _, edge := range []string{"pave", "haproxy"} {
			r, err := pass(filepath.Join(tmp, fmt.Sprintf("%s-%d", edge, i)), pave, hello, edge, rate)
			if err != nil {
				return fmt.Errorf("%s pass %d: %w", edge, i+1, err)
			}
			fmt.Printf("pass %d %-8s drain: %d/%d failed   loss: %d/%d failed (%.3f%%), shift %.2fs\n", i+1, edge,
				r.drainFailed, r.drainSent, r.lossFailed, r.lossSent, pct(r.lossFailed, r.lossSent), r.shift.Seconds())
			if edge == "pave" {
				pv = append(pv, r)
			} else {
				hp = append(hp, r)
			}
		}
	}
	fmt.Printf("\n=== failover at %d req/s, 2 clusters, median of %d passes each ===\n", rate, rounds)
	fmt.Printf("%-34s %12s %12s %8s\n", "", "pave", "haproxy", "ratio")
	row := func(name string, f func(result) float64, unit string) {
		a, b := median(pv, f), median(hp, f)
		ratio := "-"
		if b > 0 {
			ratio = fmt.Sprintf("%.2fx", a/b)
		}
		fmt.Printf("%-34s %10.3f%s %10.3f%s %8s\n", name, a, unit, b, unit, ratio)
	}
	row("failed requests during the drain", func(r result) float64 { return float64(r.drainFailed) }, "  ")
	row("failed requests during the loss", func(r result) float64 { return pct(r.lossFailed, r.lossSent) }, " %")
	row("time to move the lost share", func(r result) float64 { return r.shift.Seconds() }, " s")
	fmt.Println("goals: drain 0 failed; loss < 0.1% failed and shift < 5 s")
	return nil
}

func pct(a, b uint64) float64 { return 100 * float64(a) / float64(max(b, 1)) }

func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	sort.Float64s(v)
	return v[len(v)/2]
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type plane struct {
	api, gateway string
	token        string // the local admin token pave up wrote
	cmd          *exec.Cmd
}

func (p plane) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequestWithContext(ctx, method, "http://"+p.api+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func (p plane) cluster(ctx context.Context, name string) (server.ClusterView, error) {
	var v server.ClusterView
	err := p.do(ctx, http.MethodGet, "/api/v1/clusters/"+name, nil, &v)
	return v, err
}

// up starts `pave up --clusters seoul,busan` with v1 of hello released.
func up(ctx context.Context, dir, pave, hello string) (plane, error) {
	p := plane{api: freeAddr(), gateway: freeAddr()}
	p.cmd = exec.Command(pave, "up", "--clusters", "seoul,busan", "--data-dir", dir, "--http-addr", p.api,
		"--otlp-addr", freeAddr(), "--gateway-addr", p.gateway, "--log-level", "warn",
		"--run-roots", filepath.Dir(hello)+string(filepath.ListSeparator)+dir)
	logf, err := os.Create(dir + ".log")
	if err != nil {
		return p, err
	}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		return p, err
	}
	for i := 0; ; i++ {
		if err := p.do(ctx, http.MethodGet, "/healthz", nil, nil); err == nil {
			break
		}
		if i > 200 {
			return p, fmt.Errorf("pave up did not start (log %s.log)", dir)
		}
		time.Sleep(100 * time.Millisecond)
	}
	tok, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		return p, fmt.Errorf("the local admin token of pave up: %w", err)
	}
	p.token = strings.TrimSpace(string(tok))
	spec := map[string]any{"apiVersion": "pave.dev/v1alpha1", "kind": "Release", "spec": map[string]any{
		"service": "hello", "version": "v1", "binary": hello, "replicas": 2, "steps": []string{"100"}}}
	if err := p.do(ctx, http.MethodPost, "/api/v1/releases?create=true", spec, nil); err != nil {
		return p, err
	}
	for i := 0; ; i++ {
		var r struct {
			Status struct {
				Phase          string `json:"phase"`
				WeightsApplied bool   `json:"weightsApplied"`
			} `json:"status"`
		}
		if err := p.do(ctx, http.MethodGet, "/api/v1/releases/hello-v1", nil, &r); err == nil && r.Status.Phase == "promoted" && r.Status.WeightsApplied {
			break
		}
		if i > 600 {
			return p, fmt.Errorf("v1 was not released in time")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return p, nil
}

func (p plane) stop() {
	_ = p.do(context.Background(), http.MethodDelete, "/api/v1/runtime/hello", nil, nil)
	time.Sleep(time.Second)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
}

// pass runs one drain and one loss through the given edge.
func pass(dir, pave, hello, edge string, rate int) (result, error) {
	ctx := context.Background()
	var r result
	p, err := up(ctx, dir, pave, hello)
	if err != nil {
		if p.cmd != nil && p.cmd.Process != nil {
			p.stop()
		}
		return r, err
	}
	defer p.stop()
	seoul, err := p.cluster(ctx, "seoul")
	if err != nil {
		return r, err
	}
	busan, err := p.cluster(ctx, "busan")
	if err != nil {
		return r, err
	}
	target := p.gateway
	var hap *haproxy
	if edge == "haproxy" {
		if hap, err = startHAProxy(dir, seoul.Gateway, busan.Gateway); err != nil {
			return r, err
		}
		defer hap.stop()
		target = hap.addr
	}
	gen := loadgen.New(loadgen.Options{Addr: target, Host: "hello.localhost", Rate: rate, Request: loadgen.HelloMix})
	var shown atomic.Int32
	gen.OnFailure(func(err error) {
		if shown.Add(1) <= 5 {
			fmt.Fprintf(os.Stderr, "  %s edge: failed: %v\n", edge, err)
		}
	})
	lctx, stopLoad := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { gen.Run(lctx); close(done) }()
	defer func() { stopLoad(); <-done }()
	time.Sleep(3 * time.Second) // warm: connections pooled both ways

	// Drain busan at 50%/s: 2 s from all to nothing.
	before := gen.Counts()
	if edge == "pave" {
		if err := p.do(ctx, http.MethodPost, "/api/v1/clusters/busan/drain", server.DrainRequest{Pace: "50%/s"}, nil); err != nil {
			return r, err
		}
	} else if err := hap.drain(2 * time.Second); err != nil {
		return r, err
	}
	time.Sleep(4 * time.Second)
	c := gen.Counts().Sub(before)
	r.drainSent, r.drainFailed = c.Sent, c.Failed
	if edge == "pave" {
		if err := p.do(ctx, http.MethodPost, "/api/v1/clusters/busan/undrain", server.DrainRequest{Pace: "100%/s"}, nil); err != nil {
			return r, err
		}
	} else if err := hap.undrain(); err != nil {
		return r, err
	}
	time.Sleep(3 * time.Second)

	// Lose busan: its gateway and instances are killed.
	before = gen.Counts()
	lost := time.Now()
	if err := p.do(ctx, http.MethodPost, "/api/v1/clusters/busan/lose", nil, nil); err != nil {
		return r, err
	}
	for {
		moved := false
		if edge == "pave" {
			v, err := p.cluster(ctx, "busan")
			if err != nil {
				return r, err
			}
			moved = v.Share == 0
		} else {
			moved = hap.down("busan")
		}
		if moved {
			r.shift = time.Since(lost)
			break
		}
		if time.Since(lost) > 30*time.Second {
			return r, fmt.Errorf("%s did not move busan's share within 30 s", edge)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(max(0, 6*time.Second-time.Since(lost)))
	c = gen.Counts().Sub(before)
	r.lossSent, r.lossFailed = c.Sent, c.Failed
	return r, nil
}

type haproxy struct {
	addr, sock string
	cmd        *exec.Cmd
}

// startHAProxy runs haproxy as the edge: round-robin over the two cluster
// gateways with the Host kept, retries with redispatch to the other
// cluster, and active health checks as an operator would set them.
func startHAProxy(dir, seoul, busan string) (*haproxy, error) {
	h := &haproxy{addr: freeAddr(), sock: dir + "-haproxy.sock"}
	cfg := fmt.Sprintf(`global
  maxconn 4096
  stats socket %s mode 600 level admin
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  retries 3
  option redispatch 1
  # As Pave's edge, which retries an idempotent request in the other
  # cluster when the first answers a gateway-made 502/503: haproxy cannot
  # tell who made a 5xx, so it retries every retryable error.
  retry-on all-retryable-errors
  option http-keep-alive
frontend edge
  bind %s
  default_backend clusters
backend clusters
  # As Pave: a request that may have reached a service is never repeated
  # unless it is idempotent.
  http-request disable-l7-retry if METH_POST
  balance roundrobin
  option httpchk
  http-check send meth GET uri /readyz hdr Host hello.localhost
  default-server check inter 500ms fall 3 rise 10 weight 100
  server seoul %s
  server busan %s
`, h.sock, h.addr, seoul, busan)
	path := dir + "-haproxy.cfg"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	h.cmd = exec.Command("haproxy", "-f", path)
	h.cmd.Stdout, h.cmd.Stderr = os.Stderr, os.Stderr
	if err := h.cmd.Start(); err != nil {
		return nil, fmt.Errorf("haproxy: %w (install it: apt-get install haproxy)", err)
	}
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", h.addr); err == nil {
			c.Close()
			time.Sleep(time.Second) // first health checks
			return h, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, fmt.Errorf("haproxy did not start")
}

func (h *haproxy) stop() {
	_ = h.cmd.Process.Kill()
	_ = h.cmd.Wait()
}

func (h *haproxy) command(cmd string) (string, error) {
	c, err := net.Dial("unix", h.sock)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if _, err := fmt.Fprintln(c, cmd); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// drain lowers busan's weight to 0 in ten steps over d, the same pace as
// Pave's drain.
func (h *haproxy) drain(d time.Duration) error {
	for w := 90; w >= 0; w -= 10 {
		if _, err := h.command(fmt.Sprintf("set weight clusters/busan %d", w)); err != nil {
			return err
		}
		time.Sleep(d / 10)
	}
	return nil
}

func (h *haproxy) undrain() error {
	_, err := h.command("set weight clusters/busan 100")
	return err
}

// down reports whether haproxy's health checks took the server out.
func (h *haproxy) down(server string) bool {
	out, err := h.command("show servers state clusters")
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// be_id be_name srv_id srv_name srv_addr srv_op_state ...
		if len(f) > 5 && f[3] == server {
			return f[5] == "0" // SRV_ST_STOPPED
		}
	}
	return false
}
