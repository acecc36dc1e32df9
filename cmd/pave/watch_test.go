package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sort"
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
	cmd := exec.CommandContext(ctx, paveBin(), args...)
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
	if l, ok := next(30 * time.Second); !ok || l != "release/shop-v2" {
		t.Fatalf("first view: %q %t", l, ok)
	}
	quiet(t, next, "the first view")
	if o, err := pave(t, nil, "--server", url, "release", "abort", "shop"); err != nil {
		t.Fatalf("abort: %v\n%s", err, o)
	}
	if l, ok := next(30 * time.Second); !ok || l != "release/shop-v2" {
		t.Fatalf("the changed list was not printed again: %q %t", l, ok)
	}
}

// The clusters of a control plane are completed by name, and `cluster list
// --watch` prints the table again, after a blank line, when a cluster's
// state changes (a drain), and not while nothing changes.
func TestClusterCompletionAndListWatch(t *testing.T) {
	t.Parallel()
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
	table := func(first string) string {
		t.Helper()
		rows := []string{first}
		for range 2 {
			l, _ := next(30 * time.Second)
			rows = append(rows, l)
		}
		if !strings.HasPrefix(rows[0], "NAME") || !strings.Contains(rows[0], "STATE") || !strings.Contains(rows[0], "SHARE") {
			t.Fatalf("not a table's header: %q", rows[0])
		}
		for _, l := range rows[1:] {
			if !strings.HasPrefix(l, "busan ") && !strings.HasPrefix(l, "seoul ") {
				t.Fatalf("not a cluster's row: %q", l)
			}
		}
		return strings.Join(rows, "\n")
	}
	last := table(until(t, next, 30*time.Second, "the table's header", func(l string) bool { return strings.HasPrefix(l, "NAME") }))
	if strings.Count(last, "serving") != 2 {
		t.Fatalf("before the drain:\n%s", last)
	}
	// Over three polls the table comes again only if it changed (a
	// cluster's health may move on a loaded machine), after a blank line.
	for deadline := time.Now().Add(3 * watchInterval); ; {
		l, ok := next(time.Until(deadline))
		if !ok {
			break
		}
		if l != "" {
			t.Fatalf("a table again without a blank line: %q", l)
		}
		header, _ := next(30 * time.Second)
		if tb := table(header); tb == last {
			t.Fatalf("the same table printed again:\n%s", tb)
		} else {
			last = tb
		}
	}
	if out, err := pave(t, env, "cluster", "drain", "busan", "--pace", "100%/s"); err != nil {
		t.Fatalf("drain: %v\n%s", err, out)
	}
	if l, ok := next(30 * time.Second); !ok || l != "" {
		t.Fatalf("a changed table starts with a blank line, got %q %t", l, ok)
	}
	until(t, next, 30*time.Second, "busan drained", func(l string) bool {
		return strings.HasPrefix(l, "busan ") && strings.Contains(l, "drained")
	})
}

// watchingJSON runs pave --watch -o json and returns its documents one by
// one; it fails the test when one equals the one before: unchanged data is
// never printed again.
func watchingJSON(t *testing.T, env []string, args ...string) (next func(within time.Duration) (map[string]any, bool)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, paveBin(), append(args, "--watch", "-o", "json")...)
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
	docs := make(chan json.RawMessage, 64)
	go func() {
		dec := json.NewDecoder(out)
		for {
			var d json.RawMessage
			if dec.Decode(&d) != nil {
				close(docs)
				return
			}
			docs <- d
		}
	}()
	var last []byte
	return func(within time.Duration) (map[string]any, bool) {
		t.Helper()
		select {
		case d, ok := <-docs:
			if !ok {
				t.Fatalf("pave %s ended: %s", strings.Join(args, " "), stderr)
			}
			var c bytes.Buffer
			_ = json.Compact(&c, d)
			if bytes.Equal(c.Bytes(), last) {
				t.Fatalf("pave %s --watch printed the same data again: %s", strings.Join(args, " "), c.Bytes())
			}
			last = c.Bytes()
			var m map[string]any
			if err := json.Unmarshal(d, &m); err != nil {
				t.Fatalf("pave %s --watch -o json: %v: %s", strings.Join(args, " "), err, d)
			}
			return m, true
		case <-time.After(within):
			return nil, false
		}
	}
}

// untilDoc reads documents until ok holds, failing after within.
func untilDoc(t *testing.T, next func(time.Duration) (map[string]any, bool), within time.Duration, what string, ok func(map[string]any) bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		d, more := next(time.Until(deadline))
		if !more {
			t.Fatalf("--watch never printed %s within %s", what, within)
		}
		if ok(d) {
			return
		}
	}
}

// readyVersions is "v1=1 v2=1" of a RuntimeList document.
func readyVersions(d map[string]any) string {
	var parts []string
	deps, _ := d["deployments"].([]any)
	for _, x := range deps {
		dep, _ := x.(map[string]any)
		parts = append(parts, fmt.Sprintf("%v=%v", dep["version"], dep["ready"]))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// `ps --watch` and `traffic show --watch`: a new version and a new split
// are printed as they happen, and no view twice (watchingJSON).
func TestPsAndTrafficShowWatch(t *testing.T) {
	t.Parallel()
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
	ps := watchingJSON(t, env, "ps", "echo")
	show := watchingJSON(t, env, "traffic", "show", "echo")
	if d, ok := ps(30 * time.Second); !ok || readyVersions(d) != "v1=1" {
		t.Fatalf("ps first view: %v %t", d, ok)
	}
	if d, ok := show(30 * time.Second); !ok || len(d["endpoints"].(map[string]any)) != 1 {
		t.Fatalf("traffic show first view: %v %t", d, ok)
	}
	// Three polls: only changed views, if any.
	for deadline := time.Now().Add(3 * watchInterval); time.Now().Before(deadline); {
		ps(time.Until(deadline))
	}
	for deadline := time.Now().Add(watchInterval); time.Now().Before(deadline); {
		show(time.Until(deadline))
	}

	if out, err := pave(t, env, "run", "echo", "--version", "v2", "--source", src); err != nil {
		t.Fatalf("run v2: %v\n%s", err, out)
	}
	untilDoc(t, ps, 60*time.Second, "v2 ready", func(d map[string]any) bool { return readyVersions(d) == "v1=1 v2=1" })
	untilDoc(t, show, 60*time.Second, "v2's endpoints", func(d map[string]any) bool {
		e, _ := d["endpoints"].(map[string]any)
		return e["v2"] != nil
	})
	if out, err := pave(t, env, "traffic", "set", "echo", "v1=90", "v2=10"); err != nil {
		t.Fatalf("traffic set: %v\n%s", err, out)
	}
	untilDoc(t, show, 60*time.Second, "the new split", func(d map[string]any) bool {
		p, _ := d["percent"].(map[string]any)
		return p["v2"] == "10"
	})
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
