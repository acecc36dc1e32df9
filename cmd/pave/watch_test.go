package main

import (
	"bufio"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/traffic"
)

// --watch outside a terminal prints the list once, and again only when its
// data changes.
func TestReleaseListWatch(t *testing.T) {
	url := releaseServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, paveBin, "--server", url, "release", "list", "--watch", "-o", "name")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(within time.Duration) (string, bool) {
		select {
		case l, ok := <-lines:
			return l, ok
		case <-time.After(within):
			return "", false
		}
	}
	if l, ok := next(10 * time.Second); !ok || l != "release/shop-v2" {
		t.Fatalf("first view: %q %t", l, ok)
	}
	// Unchanged data: nothing more over three polls.
	if l, ok := next(3 * watchInterval); ok {
		t.Fatalf("an unchanged list was printed again: %q", l)
	}
	if o, err := pave(t, nil, "--server", url, "release", "abort", "shop"); err != nil {
		t.Fatalf("abort: %v\n%s", err, o)
	}
	if l, ok := next(10 * time.Second); !ok || l != "release/shop-v2" {
		t.Fatalf("the changed list was not printed again: %q %t", l, ok)
	}
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
