package main

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/server"
)

func TestTrafficCommands(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	p := startUp(t, data)
	env := []string{"PAVE_SERVER=" + p.api}

	out, err := pave(t, env, "traffic", "set", "orders", "v1=99", "v2=1")
	if err == nil || !strings.Contains(out, "service orders has no version v1, v2") {
		t.Fatalf("weights for versions that do not exist: %v\n%s", err, out)
	}
	for args, want := range map[string]string{
		"orders v1=99 v2=x":             `"x" is not a percentage`,
		"orders v1=99 v2=2":             "sum to 101%",
		"orders v1=99.00001 v2=0.99999": "more than 4 decimals",
		"orders v1":                     "want VERSION=PERCENT",
	} {
		out, err := pave(t, env, append([]string{"traffic", "set"}, strings.Fields(args)...)...)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("traffic set %s: %v\n%s\nwant an error containing %q", args, err, out, want)
		}
	}

	out, err = pave(t, env, "traffic", "routes", "set", "api.example/orders=orders", "/=frontend", "-o", "json")
	if err != nil {
		t.Fatalf("routes set: %v\n%s", err, out)
	}
	out, err = pave(t, env, "traffic", "routes", "set", "/a=x", "/a=y")
	if err == nil || !strings.Contains(out, "collides") {
		t.Fatalf("colliding routes: %v\n%s", err, out)
	}

	// Restart: the routes come back from the state store.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatal("pave up did not stop")
	}
	p = startUp(t, data)
	env = []string{"PAVE_SERVER=" + p.api}
	out, err = pave(t, env, "traffic", "routes", "-o", "json")
	var routes server.GatewayRoutes
	if err != nil || json.Unmarshal([]byte(out), &routes) != nil || len(routes.Routes) != 2 {
		t.Fatalf("routes after restart: %v\n%s", err, out)
	}
	out, err = pave(t, env, "traffic", "routes")
	if err != nil || !strings.Contains(out, "api.example") || !strings.Contains(out, "frontend") {
		t.Fatalf("routes text: %v\n%s", err, out)
	}
	out, err = pave(t, env, "traffic", "show", "orders")
	if err == nil || !strings.Contains(out, "no weights and no ready instances") {
		t.Fatalf("show of an unknown service: %v\n%s", err, out)
	}
	out, err = pave(t, env, "traffic", "routes", "clear")
	if err != nil || !strings.Contains(out, "no explicit routes") {
		t.Fatalf("routes clear: %v\n%s", err, out)
	}
	out, err = pave(t, env, "traffic", "routes", "-o", "json")
	if err != nil || json.Unmarshal([]byte(out), &routes) != nil || len(routes.Routes) != 0 {
		t.Fatalf("routes after clear: %v\n%s", err, out)
	}
}
