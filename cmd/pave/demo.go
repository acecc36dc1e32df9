package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pave-platform/pave/internal/analysis"
	"github.com/pave-platform/pave/internal/config"
	"github.com/pave-platform/pave/internal/fleet"
	"github.com/pave-platform/pave/internal/loadgen"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/scaffold"
	"github.com/pave-platform/pave/internal/server"
)

func init() { register(demoCommand) }

func demoCommand(g *globals) *cobra.Command {
	var (
		dataDir  string
		keep     bool
		rate     int
		clusters []string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole release path on this machine, start to finish",
		Long: `Start the embedded platform, create a service with pave new, run v1 of a
sample service (examples/hello) under synthetic traffic, release v2 (healthy:
promoted, one cluster after the other) and v3 (an injected regression on one
route: rolled back everywhere), then drain a cluster and bring it back, lose
a whole cluster (its gateway and instances killed) and watch the edge fail
over, and print a summary. With --clusters local it runs one cluster and
skips the cluster drill. Runs from a Pave source checkout. --keep leaves
everything running with the web UI until Ctrl-C.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return runDemo(ctx, g, cmd.OutOrStdout(), demoOptions{dataDir: dataDir, keep: keep, rate: rate, clusters: clusters})
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data directory (default: a new temporary directory)")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the platform and traffic running after the summary, with the UI")
	cmd.Flags().IntVar(&rate, "rate", 400, "synthetic requests per second")
	cmd.Flags().StringSliceVar(&clusters, "clusters", []string{"seoul", "busan"}, "embedded clusters to run active-active (one name: a single cluster)")
	return cmd
}

// helloSource finds examples/hello of the source checkout the demo runs in.
func helloSource() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "examples", "hello")
		if _, err := os.Stat(filepath.Join(p, "main.go")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
				return p, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("pave demo builds examples/hello from a Pave source checkout: run it inside the checkout (scripts/demo.sh does)")
		}
		dir = parent
	}
}

func loopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

type demo struct {
	g       *globals
	out     io.Writer
	gateway string
	start   time.Time
	load    *loadgen.Gen
	// failures are the load's latest failed requests (the drill shows
	// those of the loss).
	failures failureLog
}

type demoOptions struct {
	dataDir  string
	keep     bool
	rate     int
	clusters []string
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "[%5.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func runDemo(ctx context.Context, g *globals, out io.Writer, o demoOptions) error {
	dataDir, keep, rate := o.dataDir, o.keep, o.rate
	if rate < 10 || rate > 5000 {
		return fmt.Errorf("--rate %d: want 10 to 5000 requests per second", rate)
	}
	src, err := helloSource()
	if err != nil {
		return err
	}
	if dataDir == "" {
		if dataDir, err = os.MkdirTemp("", "pave-demo-"); err != nil {
			return err
		}
	}
	cfg := config.Default()
	cfg.DataDir = dataDir
	// The demo builds and runs examples/hello from this checkout.
	cfg.RunRoots = strings.Join([]string{src, dataDir}, string(filepath.ListSeparator))
	cfg.ShutdownTimeout = 10 * time.Second
	if len(o.clusters) > 0 {
		cfg.Clusters = o.clusters
	}
	seen := map[string]bool{}
	for _, c := range cfg.Clusters {
		if err := fleet.ValidName(c); err != nil || seen[c] {
			return fmt.Errorf("--clusters %s: %q: give distinct names of lower-case letters, digits and '-'", strings.Join(cfg.Clusters, ","), c)
		}
		seen[c] = true
	}
	for _, a := range []*string{&cfg.HTTPAddr, &cfg.OTLPAddr, &cfg.GatewayAddr} {
		if *a, err = loopbackAddr(); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	logFile, err := os.Create(filepath.Join(dataDir, "pave-up.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()

	d := &demo{g: &globals{server: "http://" + cfg.HTTPAddr, output: "text"}, out: out, gateway: cfg.GatewayAddr, start: time.Now()}
	upCtx, stopUp := context.WithCancel(context.WithoutCancel(ctx))
	upDone := make(chan error, 1)
	go func() { upDone <- runUp(upCtx, cfg, logFile) }()
	defer func() {
		// Services outlive `pave up` by design (they are adopted on its
		// restart); the demo's are its own, so it stops them first.
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = d.g.client().Do(cctx, http.MethodDelete, "/api/v1/runtime/hello", nil, nil)
		d.waitStopped(cctx)
		cancel()
		stopUp()
		<-upDone
	}()
	hctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = d.g.client().WaitHealthy(hctx)
	cancel()
	if err != nil {
		return fmt.Errorf("the control plane did not start (log: %s): %w", logFile.Name(), err)
	}
	d.say("control plane up: API and UI %s/ui/, gateway %s, data %s", d.g.server, cfg.GatewayAddr, dataDir)
	if len(cfg.Clusters) > 1 {
		d.say("%d clusters active-active (%s), each a runtime and a gateway, behind the edge gateway at %s",
			len(cfg.Clusters), strings.Join(cfg.Clusters, ", "), cfg.GatewayAddr)
	}

	// The golden path: a new service from the template, as a team starts one.
	t0 := time.Now()
	res, err := scaffold.New(ctx, scaffold.NewOptions{Answers: scaffold.Answers{Name: "payments", Memory: "256Mi"}.WithDefaults(),
		Dir: filepath.Join(dataDir, "services", "payments")})
	if err != nil {
		return fmt.Errorf("pave new: %w", err)
	}
	d.say("pave new payments: %d files in %s (%d ms): kit service, Dockerfile, CI workflow, k8s+Istio manifests, dashboard, SLO alerts",
		len(res.Files), res.Dir, time.Since(t0).Milliseconds())

	// v1: the first release takes all traffic once ready.
	if _, err := d.release(ctx, "v1", src, nil, []string{"100"}); err != nil {
		return err
	}
	trafficCtx, stopTraffic := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	d.load = loadgen.New(loadgen.Options{Addr: d.gateway, Host: "hello.localhost", Rate: rate, Request: loadgen.HelloMix})
	d.load.OnFailure(d.failures.add)
	go func() { defer wg.Done(); d.load.Run(trafficCtx) }()
	defer func() { stopTraffic(); wg.Wait() }()
	d.say("synthetic traffic: %d req/s to http://hello.localhost (90%% GET /v1/hello/{name}, 10%% POST /v1/pay)", rate)

	v2, err := d.release(ctx, "v2", src, nil, nil)
	if err != nil {
		return err
	}
	// Every POST /v1/pay fails (10% of the traffic): with two clusters the
	// first wave's 1% step sees about 2 requests a second, and a plain
	// regression must be told apart from noise within the step's hold.
	v3, err := d.release(ctx, "v3", src, map[string]string{"HELLO_FAIL_ROUTE": "POST /v1/pay", "HELLO_FAIL_RATE": "1"}, nil)
	if err != nil {
		return err
	}
	var drill *clusterDrill
	if len(cfg.Clusters) > 1 {
		if drill, err = d.clusterDrill(ctx, cfg.Clusters[len(cfg.Clusters)-1]); err != nil {
			return err
		}
	}
	time.Sleep(500 * time.Millisecond) // let the last requests land in the statistics
	if err := d.summary(ctx, []release.Release{v2, v3}, drill); err != nil {
		return err
	}
	ok := v2.Status.Phase == release.Promoted && v3.Status.Phase == release.RolledBack && (drill == nil || drill.ok())
	if keep {
		d.say("--keep: everything keeps running; UI at %s/ui/releases.html; Ctrl-C to stop", d.g.server)
		<-ctx.Done()
	}
	if !ok {
		return exitCode{code: 1, msg: fmt.Sprintf("demo ended unexpectedly: v2 %s, v3 %s (want promoted, rolled back)%s", v2.Status.Phase.Words(), v3.Status.Phase.Words(), drill.problem())}
	}
	return nil
}

// release starts a release of examples/hello at version and follows it to
// its end, printing each change of step or verdict.
func (d *demo) release(ctx context.Context, version, src string, env map[string]string, steps []string) (release.Release, error) {
	spec := map[string]any{"service": "hello", "version": version, "source": src, "replicas": 2,
		"stepDuration": "3s", "stepSamples": 50, "maxHold": "120s", "onHoldTimeout": "fail",
		// The sample answers in about a millisecond, and one machine runs
		// the load, the platform and six replicas, often beside other work:
		// the p99 of the few dozen requests a 1% step sees moves by tens of
		// ms on scheduling noise alone. The demo's regression is in errors;
		// latency judging is measured in bench/release, so here only a
		// shift a user would plainly feel (250 ms) fails a step.
		// Likewise the final step of each wave accepts a canary whose error
		// rate is at most stable's plus 1% (not the default 0.1%), which
		// needs ten times fewer samples: a demo, not a payment service.
		"analysis": map[string]any{"latencyFloorMs": 250, "errorFloor": 0.01}}
	if steps == nil {
		steps = []string{"1", "10", "50", "100"}
	}
	spec["steps"] = steps
	if len(env) > 0 {
		spec["env"] = env
	}
	var created release.Release
	body := map[string]any{"apiVersion": release.APIVersion, "kind": release.Kind, "spec": spec}
	if err := d.g.client().Do(ctx, http.MethodPost, "/api/v1/releases?create=true", body, &created); err != nil {
		return release.Release{}, fmt.Errorf("release %s: %w", version, err)
	}
	what := "healthy"
	if len(env) > 0 {
		what = "with an injected regression: every POST /v1/pay fails"
	}
	d.say("release %s (%s) started: steps %s%%", created.Metadata.Name, what, strings.Join(steps, "→"))
	last := ""
	for {
		var r release.Release
		if err := d.g.client().Do(ctx, http.MethodGet, "/api/v1/releases/"+url.PathEscape(created.Metadata.Name), nil, &r); err != nil {
			return release.Release{}, err
		}
		line := fmt.Sprintf("%s: %s, weights %s", r.Metadata.Name, r.Status.Phase.Words(), orNone(r.Status.Weights.String()))
		if r.Status.Decision != nil {
			line += fmt.Sprintf(", canary %d req, verdict %s", r.Status.Decision.CanaryRequests, r.Status.Decision.Verdict)
		}
		if line != last {
			d.say("  %s", line)
			last = line
		}
		if r.Settled() {
			d.say("release %s %s: %s", r.Metadata.Name, r.Status.Phase.Words(), r.Status.Message)
			return r, nil
		}
		select {
		case <-ctx.Done():
			return release.Release{}, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitStopped waits until the runtime reports no instance of the demo's
// service, so no process outlives the demo.
func (d *demo) waitStopped(ctx context.Context) {
	for ctx.Err() == nil {
		var list server.RuntimeList
		if err := d.g.client().Do(ctx, http.MethodGet, "/api/v1/runtime/hello", nil, &list); err != nil || len(list.Deployments) == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (d *demo) summary(ctx context.Context, rels []release.Release, drill *clusterDrill) error {
	var view server.TrafficView
	if err := d.g.client().Do(ctx, http.MethodGet, "/api/v1/traffic/hello", nil, &view); err != nil {
		return err
	}
	w := d.out
	fmt.Fprintf(w, "\n=== Summary (%.0fs) ===\n", time.Since(d.start).Seconds())
	c := d.load.Counts()
	fmt.Fprintf(w, "Synthetic requests sent: %d, failed (5xx or no answer): %d\n", c.Sent, c.Failed)
	fmt.Fprintf(w, "\nRequests per version (gateway statistics):\n")
	versions := make([]string, 0, len(view.Stats))
	for v := range view.Stats {
		versions = append(versions, v)
	}
	sort.Strings(versions)
	for _, v := range versions {
		t := view.Stats[v].Total
		p99 := t.Quantile(0.99)
		if math.IsNaN(p99) {
			p99 = 0
		}
		fmt.Fprintf(w, "  %-4s %8d requests %6d failed (%.2f%%)  p99 %.1f ms\n", v, t.Requests, t.Errors, 100*t.ErrorRate(), p99)
	}
	fmt.Fprintf(w, "Final weights: %s\n", orNone(view.Weights.String()))
	for _, r := range rels {
		fmt.Fprintf(w, "\nRelease %s (%s → %s): %s — %s\n", r.Metadata.Name, orNone(r.Status.Stable), r.Spec.Version, r.Status.Phase.Words(), r.Status.Message)
		var hist []release.Event
		if err := d.g.client().Do(ctx, http.MethodGet, "/api/v1/releases/"+url.PathEscape(r.Metadata.Name)+"/history", nil, &hist); err == nil {
			for _, e := range hist {
				fmt.Fprintf(w, "  %s  %-22s %s\n", e.Time.Format("15:04:05.000"), e.Type, eventDetail(e.Data))
			}
		}
		if r.Status.Phase != release.Promoted && r.Status.Decision != nil {
			fmt.Fprintf(w, "  Why it was stopped: %s\n", r.Status.Decision.Reason)
			for _, f := range r.Status.Decision.Findings {
				if f.Verdict == analysis.Fail {
					fmt.Fprintf(w, "    %s on %s: %s\n", f.Judge, f.Scope, f.Reason)
				}
			}
		}
	}
	drill.print(w)
	fmt.Fprintf(w, "\nLook closer: %s/ui/releases.html (releases), %s/ui/logs.html (every log line)\n", d.g.server, d.g.server)
	return nil
}

// eventDetail shortens an event's data to one line.
func eventDetail(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return string(raw)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		if k == "decision" {
			continue
		}
		b, _ := json.Marshal(m[k])
		parts = append(parts, k+"="+string(b))
	}
	s := strings.Join(parts, " ")
	if len(s) > 140 {
		s = s[:140] + "…"
	}
	return s
}
