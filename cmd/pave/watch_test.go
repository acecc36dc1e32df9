package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/traffic"
)

// watching runs pave with --watch and returns its output line by line:
// next gives the next line within a time, and false when none came. The
// process is stopped when the test ends.
func watching(t *testing.T, env []string, args ...string) (next func(within time.Duration) (string, bool)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, paveBin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return func(within time.Duration) (string, bool) {
		select {
		case l, ok := <-lines:
			if !ok && stderr.String() != "" {
				t.Errorf("pave %s ended: %s", strings.Join(args, " "), stderr)
			}
			return l, ok
		case <-time.After(within):
			return "", false
		}
	}
}

// until reads lines until one satisfies ok, failing the test after within.
func until(t *testing.T, next func(time.Duration) (string, bool), within time.Duration, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(within)
	var seen []string
	for {
		l, more := next(time.Until(deadline))
		if !more {
			t.Fatalf("--watch never printed %s within %s; it printed:\n%s", what, within, strings.Join(seen, "\n"))
		}
		if ok(l) {
			return l
		}
		seen = append(seen, l)
	}
}

// quiet fails the test when the watch prints anything over three polls:
// unchanged data is not printed again.
func quiet(t *testing.T, next func(time.Duration) (string, bool), after string) {
	t.Helper()
	if l, ok := next(3 * watchInterval); ok {
		t.Fatalf("--watch printed unchanged data again after %s: %q", after, l)
	}
}

// --watch outside a terminal prints the list once, and again only when its
// data changes.
func TestReleaseListWatch(t *testing.T) {
	url := releaseServer(t)
	next := watching(t, nil, "--server", url, "release", "list", "--watch", "-o", "name")
	if l, ok := next(10 * time.Second); !ok || l != "release/shop-v2" {
		t.Fatalf("first view: %q %t", l, ok)
	}
	quiet(t, next, "the first view")
	if o, err := pave(t, nil, "--server", url, "release", "abort", "shop"); err != nil {
		t.Fatalf("abort: %v\n%s", err, o)
	}
	if l, ok := next(10 * time.Second); !ok || l != "release/shop-v2" {
		t.Fatalf("the changed list was not printed again: %q %t", l, ok)
	}
}

// The clusters of a control plane are completed by name, and `cluster list
// --watch` prints the table again, after a blank line, when a cluster's
// state changes (a drain), and not while nothing changes.
func TestClusterCompletionAndListWatch(t *testing.T) {
	p := startUp(t, t.TempDir(), "--clusters", "seoul,busan")
	env := []string{"PAVE_SERVER=" + p.api, "XDG_CONFIG_HOME=" + t.TempDir()}
	for args, want := range map[string]string{
		"cluster drain ":           "busan\nseoul\n:4\n",
		"cluster status s":         "seoul\n:4\n",
		"cluster undrain b":        "busan\n:4\n",
		"cluster remove x":         ":4\n",
		"cluster status seoul ":    ":4\n", // one argument only
		"cluster drain --pace 5 b": "busan\n:4\n",
	} {
		words := strings.Fields(args)
		if strings.HasSuffix(args, " ") {
			words = append(words, "")
		}
		out, err := pave(t, env, append([]string{"__complete"}, words...)...)
		if err != nil || !strings.HasPrefix(out, want) {
			t.Errorf("complete %q: %v\n%s\nwant it to start with %q", args, err, out, want)
		}
	}

	next := watching(t, env, "cluster", "list", "--watch")
	header := until(t, next, 10*time.Second, "the table's header", func(l string) bool { return strings.HasPrefix(l, "NAME") })
	if !strings.Contains(header, "STATE") || !strings.Contains(header, "SHARE") {
		t.Fatalf("header %q", header)
	}
	for range 2 {
		l, _ := next(5 * time.Second)
		if !strings.HasPrefix(l, "busan ") && !strings.HasPrefix(l, "seoul ") || !strings.Contains(l, "serving") {
			t.Fatalf("a row before the drain: %q", l)
		}
	}
	quiet(t, next, "the first table")
	if out, err := pave(t, env, "cluster", "drain", "busan", "--pace", "100%/s"); err != nil {
		t.Fatalf("drain: %v\n%s", err, out)
	}
	if l, ok := next(10 * time.Second); !ok || l != "" {
		t.Fatalf("a changed table starts with a blank line, got %q %t", l, ok)
	}
	until(t, next, 30*time.Second, "busan drained", func(l string) bool {
		return strings.HasPrefix(l, "busan ") && strings.Contains(l, "drained")
	})
}

// `ps --watch` and `traffic show --watch`: a new version and a new split
// are printed as they happen, unchanged data is not printed again.
func TestPsAndTrafficShowWatch(t *testing.T) {
	src := echoSource(t)
	p := startUp(t, t.TempDir())
	env := []string{"PAVE_SERVER=" + p.api}
	t.Cleanup(func() {
		if out, err := pave(t, env, "stop", "echo"); err != nil {
			t.Errorf("stop: %v\n%s", err, out)
		}
	})
	if out, err := pave(t, env, "run", "echo", "--version", "v1", "--source", src); err != nil {
		t.Fatalf("run v1: %v\n%s", err, out)
	}
	ps := watching(t, env, "ps", "echo", "--watch", "-o", "jsonpath={range .deployments[*]}{.version}={.ready} {end}")
	show := watching(t, env, "traffic", "show", "echo", "--watch", "-o", "jsonpath={.percent}|{.endpoints}")
	if l, ok := ps(10 * time.Second); !ok || strings.TrimSpace(l) != "v1=1" {
		t.Fatalf("ps first view: %q %t", l, ok)
	}
	first, ok := show(10 * time.Second)
	if !ok || !strings.Contains(first, "127.0.0.1:") {
		t.Fatalf("traffic show first view: %q %t", first, ok)
	}
	quiet(t, ps, "ps's first view")
	quiet(t, show, "traffic show's first view")

	if out, err := pave(t, env, "run", "echo", "--version", "v2", "--source", src); err != nil {
		t.Fatalf("run v2: %v\n%s", err, out)
	}
	until(t, ps, 20*time.Second, "v2 ready", func(l string) bool { return strings.TrimSpace(l) == "v1=1 v2=1" })
	until(t, show, 20*time.Second, "v2's endpoint", func(l string) bool { return strings.Count(l, "127.0.0.1:") == 2 })
	if out, err := pave(t, env, "traffic", "set", "echo", "v1=90", "v2=10"); err != nil {
		t.Fatalf("traffic set: %v\n%s", err, out)
	}
	until(t, show, 20*time.Second, "the new split", func(l string) bool { return strings.Contains(l, `"v2":"10"`) })
	quiet(t, ps, "v2 became ready (a split is not ps's business)")
}

func TestTrafficShowWithoutState(t *testing.T) {
	var b strings.Builder
	printTraffic(&b, server.TrafficView{Service: "orders", Weights: traffic.Weights{"v3": traffic.Total}})
	if first := strings.SplitN(b.String(), "\n", 2)[0]; first != "orders: v3=100" {
		t.Errorf("first line %q, want %q", first, "orders: v3=100")
	}
	b.Reset()
	printTraffic(&b, server.TrafficView{Service: "orders", Weights: traffic.Weights{"v3": traffic.Total}, State: "applied"})
	if first := strings.SplitN(b.String(), "\n", 2)[0]; first != "orders: v3=100 (applied)" {
		t.Errorf("first line %q", first)
	}
}
