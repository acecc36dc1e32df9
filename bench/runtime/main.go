// Command runtimebench measures what Pave's local runtime costs to start
// and stop replicas of a service, against a bare supervisor in the same
// process: exec.Command per replica, readiness polled (10ms, then doubling),
// SIGTERM and wait to stop. Both run the same binary, built once with the go
// command, on loopback; passes interleave (bare, pave, bare, pave, ...).
//
// Per pass it reports the wall time from the request to all replicas ready
// (for Pave: until the EndpointSink received them all, i.e. the gateway
// could route), the wall time to stop them all, and the CPU time of this
// process (getrusage: the supervisor's own work, not the services').
//
//	go run ./bench/runtime -passes 5 -replicas 4 -rounds 5
package main

import (
	"context"
	"errors"
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
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/pave-platform/pave/internal/runtime"
	"github.com/pave-platform/pave/internal/state"
)

const service = `package main

import (
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/readyz", func(http.ResponseWriter, *http.Request) {})
	if err := http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil); err != nil {
		os.Exit(1)
	}
}
`

type result struct{ start, stop, cpu time.Duration }

func main() {
	passes := flag.Int("passes", 5, "interleaved passes per supervisor")
	replicas := flag.Int("replicas", 4, "replicas started per round")
	rounds := flag.Int("rounds", 5, "start/stop rounds per pass")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
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
	if *passes < 1 || *passes > 50 || *replicas < 1 || *replicas > 32 || *rounds < 1 || *rounds > 100 {
		log.Fatal("want 1-50 passes, 1-32 replicas, 1-100 rounds")
	}
	dir, err := os.MkdirTemp("", "runtimebench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := buildService(dir)

	st, err := state.OpenSQLite(filepath.Join(dir, "state.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	sink := &waitSink{}
	rt, err := runtime.NewLocal(runtime.LocalOptions{Store: st, DataDir: filepath.Join(dir, "data"), Endpoints: sink,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), StopOnShutdown: true})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = rt.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	paveRound(ctx, rt, sink, bin, *replicas) // warm-up: fills the artifact cache
	bareRound(bin, dir, *replicas)
	fmt.Printf("start and stop %d replicas, %d rounds per pass, %d interleaved passes\n", *replicas, *rounds, *passes)
	fmt.Printf("%-5s %-5s %12s %12s %14s\n", "pass", "who", "start ms", "stop ms", "CPU ms/round")
	var bare, pave []result
	for p := 1; p <= *passes; p++ {
		b := measure(*rounds, func() (time.Duration, time.Duration) { return bareRound(bin, dir, *replicas) })
		bare = append(bare, b)
		fmt.Printf("%-5d %-5s %12.1f %12.1f %14.2f\n", p, "bare", ms(b.start), ms(b.stop), ms(b.cpu))
		v := measure(*rounds, func() (time.Duration, time.Duration) { return paveRound(ctx, rt, sink, bin, *replicas) })
		pave = append(pave, v)
		fmt.Printf("%-5d %-5s %12.1f %12.1f %14.2f\n", p, "pave", ms(v.start), ms(v.stop), ms(v.cpu))
	}
	report := func(name string, f func(result) time.Duration) {
		var peer, ours, ratio []float64
		for i := range bare {
			peer = append(peer, ms(f(bare[i])))
			ours = append(ours, ms(f(pave[i])))
			ratio = append(ratio, ms(f(pave[i]))/ms(f(bare[i])))
		}
		fmt.Printf("%-22s bare supervisor (peer) %8.2f ms   pave runtime %8.2f ms   ratio %.2fx (min %.2fx, max %.2fx)\n",
			name, median(peer), median(ours), median(ratio), slices.Min(ratio), slices.Max(ratio))
	}
	fmt.Println()
	report("start to all ready:", func(r result) time.Duration { return r.start })
	report("stop all:", func(r result) time.Duration { return r.stop })
	report("supervisor CPU/round:", func(r result) time.Duration { return r.cpu })
}

func measure(rounds int, round func() (time.Duration, time.Duration)) result {
	var r result
	c0 := cpuTime()
	for range rounds {
		s, t := round()
		r.start += s
		r.stop += t
	}
	r.cpu = cpuTime() - c0
	n := time.Duration(rounds)
	return result{start: r.start / n, stop: r.stop / n, cpu: r.cpu / n}
}

// paveRound deploys the version (its artifact is cached after the warm-up
// round, as for any re-run), waits until the sink has all endpoints, then
// removes it and waits until every instance is gone.
func paveRound(ctx context.Context, rt *runtime.Local, sink *waitSink, bin string, n int) (time.Duration, time.Duration) {
	const v = "v1"
	ready := sink.expect("bench", v, n)
	t0 := time.Now()
	if err := rt.Deploy(ctx, runtime.Deployment{Service: "bench", Version: v, Binary: bin, Replicas: n}); err != nil {
		log.Fatal(err)
	}
	wait(ready, "pave start")
	start := time.Since(t0)
	t1 := time.Now()
	if err := rt.Remove(ctx, "bench", v); err != nil {
		log.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := rt.Status(ctx, "bench", v); errors.Is(err, runtime.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			log.Fatal("pave stop: not gone after 30s")
		}
		time.Sleep(2 * time.Millisecond)
	}
	return start, time.Since(t1)
}

// bareRound is the peer: what a minimal supervisor does.
func bareRound(bin, dir string, n int) (time.Duration, time.Duration) {
	t0 := time.Now()
	cmds := make([]*exec.Cmd, n)
	ports := make([]int, n)
	for i := range cmds {
		ports[i] = freePort()
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(ports[i]))
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			log.Fatal(err)
		}
		cmds[i] = cmd
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var wg sync.WaitGroup
	for _, port := range ports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			delay := 10 * time.Millisecond
			for i := 0; ; i++ {
				resp, err := client.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/readyz")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 {
						return
					}
				}
				if i > 200 {
					log.Fatal("bare start: never ready")
				}
				time.Sleep(delay)
				delay = min(delay*2, 200*time.Millisecond)
			}
		}()
	}
	wg.Wait()
	start := time.Since(t0)
	t1 := time.Now()
	for _, cmd := range cmds {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
	for _, cmd := range cmds {
		_ = cmd.Wait()
	}
	return start, time.Since(t1)
}

// waitSink is the EndpointSink: it signals when a version has n endpoints.
type waitSink struct {
	mu      sync.Mutex
	version string
	n       int
	ch      chan struct{}
}

func (s *waitSink) expect(_, version string, n int) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version, s.n, s.ch = version, n, make(chan struct{})
	return s.ch
}

func (s *waitSink) SetEndpoints(_, version string, eps []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if version == s.version && len(eps) == s.n && s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

func wait(ch <-chan struct{}, what string) {
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		log.Fatalf("%s: not ready after 30s", what)
	}
}

func buildService(dir string) string {
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o700); err != nil {
		log.Fatal(err)
	}
	for name, body := range map[string]string{"go.mod": "module benchsvc\n\ngo 1.26\n", "main.go": service} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o600); err != nil {
			log.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "svc")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		log.Fatalf("go build of the bench service: %v\n%s", err, out)
	}
	return bin
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		log.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(x []float64) float64 {
	s := slices.Sorted(slices.Values(x))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
