package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/release/releasetest"
	"github.com/pave-platform/pave/internal/server"
	"github.com/pave-platform/pave/internal/state"
)

// releaseServer is the release API over a real engine (releasetest's rig)
// with one release of shop in progress.
func releaseServer(t *testing.T) string {
	t.Helper()
	rig := releasetest.NewRig(t, nil)
	s := server.New(server.Options{Tokens: auth.Tokens{Store: rig.Store}, Open: true, RunRoots: anyRunRoot(t), Log: slog.New(slog.DiscardHandler)})
	server.ReleaseAPI{Engine: rig.Engine}.Register(s)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	// Every pave the test runs changes things with this token, unless its
	// env says otherwise (the last value of a variable wins).
	t.Setenv("PAVE_TOKEN", adminToken(t, rig.Store))
	if out, err := pave(t, []string{"PAVE_SERVER=" + ts.URL}, "release", "shop", "--version", "v2", "--binary", "/bin/shop"); err != nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	if err := rig.Engine.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ts.URL
}

// Contexts: kept in $XDG_CONFIG_HOME/pave/config.yaml (0600), chosen by
// use-context or --context; --server and PAVE_SERVER win over them, and a
// context's token goes only to its own server.
func TestContexts(t *testing.T) {
	cfgHome := t.TempDir()
	var mu sync.Mutex
	auths := map[string]string{}
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths[r.URL.Path] = r.Header.Get("Authorization")
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`[]`))
	}))
	defer rec.Close()
	real := releaseServer(t)
	env := []string{"XDG_CONFIG_HOME=" + cfgHome, "PAVE_SERVER=", "PAVE_TOKEN=", "PAVE_CONTEXT=", "PAVE_CONFIG="}

	out, err := pave(t, env, "config", "current-context")
	if err == nil || !strings.Contains(out, "no current context") {
		t.Fatalf("current-context of no config: %v\n%s", err, out)
	}
	if out, err = pave(t, env, "config", "set-context", "rec", "--server", rec.URL, "--token", "secret-rec"); err != nil {
		t.Fatalf("set-context rec: %v\n%s", err, out)
	}
	// No scheme: http for loopback.
	if out, err = pave(t, env, "config", "set-context", "real", "--server", strings.TrimPrefix(real, "http://")); err != nil {
		t.Fatalf("set-context real: %v\n%s", err, out)
	}
	if out, err = pave(t, env, "config", "set-context", "down", "--server", "127.0.0.1:1"); err != nil {
		t.Fatalf("set-context down: %v\n%s", err, out)
	}
	path := filepath.Join(cfgHome, "pave", "config.yaml")
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file %s: %v %v, want mode 0600", path, err, fi)
	}
	out, err = pave(t, env, "config", "get-contexts")
	if err != nil {
		t.Fatalf("get-contexts: %v\n%s", err, out)
	}
	if strings.Contains(out, "secret-rec") {
		t.Errorf("get-contexts printed a token:\n%s", out)
	}
	golden(t, "cli_get_contexts", out)
	out, err = pave(t, env, "config", "current-context")
	if err != nil || out != "rec\n" {
		t.Fatalf("the first context becomes current: %v %q", err, out)
	}

	// The current context's server and token.
	if out, err = pave(t, env, "release", "list"); err != nil {
		t.Fatalf("list via context rec: %v\n%s", err, out)
	}
	mu.Lock()
	if auths["/api/v1/releases"] != "Bearer secret-rec" {
		t.Errorf("context token not sent: %q", auths["/api/v1/releases"])
	}
	delete(auths, "/api/v1/releases")
	mu.Unlock()

	if out, err = pave(t, env, "config", "use-context", "real"); err != nil || !strings.Contains(out, `switched to context "real"`) {
		t.Fatalf("use-context: %v\n%s", err, out)
	}
	if out, err = pave(t, env, "release", "status", "shop", "-o", "jsonpath={.metadata.name}"); err != nil || out != "shop-v2\n" {
		t.Fatalf("status via context real: %v %q", err, out)
	}
	// --context for one command; unreachable is exit 5 with the address.
	out, err = pave(t, env, "release", "list", "--context", "down")
	if exitOf(err) != exitUnreachable || !strings.Contains(out, "http://127.0.0.1:1") {
		t.Fatalf("--context down: exit %d\n%s", exitOf(err), out)
	}
	// PAVE_SERVER and --server win over the context, and the context's
	// token is not sent to them.
	if err := os.WriteFile(path, []byte("current-context: rec\ncontexts:\n- name: rec\n  server: http://127.0.0.1:1\n  token: secret-rec\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err = pave(t, append(env, "PAVE_SERVER="+rec.URL), "release", "list"); err != nil {
		t.Fatalf("PAVE_SERVER over the context: %v\n%s", err, out)
	}
	mu.Lock()
	if a, ok := auths["/api/v1/releases"]; !ok || a != "" {
		t.Errorf("PAVE_SERVER: request seen %t, Authorization %q (want none: the token is the context's)", ok, a)
	}
	mu.Unlock()
	if out, err = pave(t, env, "release", "list", "--server", real); err != nil {
		t.Fatalf("--server over the context: %v\n%s", err, out)
	}

	out, err = pave(t, env, "config", "use-context", "recc")
	if err == nil || !strings.Contains(out, `did you mean "rec"?`) {
		t.Fatalf("use-context with a typo: %v\n%s", err, out)
	}
	if err := os.WriteFile(path, []byte("current-context: x\ncontexts: [{name: x, sever: typo}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = pave(t, env, "release", "list")
	if err == nil || !strings.Contains(out, path) || !strings.Contains(out, "sever") {
		t.Fatalf("a bad config file is named with its fault: %v\n%s", err, out)
	}
	// Local commands still work with a broken config file.
	if out, err = pave(t, env, "version"); err != nil {
		t.Fatalf("version with a broken config: %v\n%s", err, out)
	}
}

// Shell completion asks the control plane for names.
func TestCompletion(t *testing.T) {
	real := releaseServer(t)
	env := []string{"PAVE_SERVER=" + real, "XDG_CONFIG_HOME=" + t.TempDir()}
	out, err := pave(t, env, "__complete", "release", "status", "")
	if err != nil {
		t.Fatalf("complete: %v\n%s", err, out)
	}
	golden(t, "cli_complete_release_status", out)
	out, err = pave(t, env, "__complete", "release", "pause", "shop-")
	if err != nil || !strings.HasPrefix(out, "shop-v2\n:4\n") {
		t.Fatalf("complete with a prefix: %v\n%s", err, out)
	}
	out, err = pave(t, env, "__complete", "release", "sh")
	if err != nil || !strings.HasPrefix(out, "shop\n:4\n") {
		t.Fatalf("complete the service of a new release: %v\n%s", err, out)
	}
	out, err = pave(t, env, "__complete", "traffic", "set", "shop", "")
	if err != nil || !strings.Contains(out, "v2=\n") {
		t.Fatalf("complete versions: %v\n%s", err, out)
	}
	// Services of `ps` and `traffic show`, versions of --version.
	for _, args := range [][]string{{"ps", ""}, {"traffic", "show", "s"}, {"logs", "--service", ""}} {
		out, err = pave(t, env, append([]string{"__complete"}, args...)...)
		if err != nil || !strings.HasPrefix(out, "shop\n:4\n") {
			t.Errorf("complete a service: pave %q: %v\n%s", args, err, out)
		}
	}
	for _, args := range [][]string{{"logs", "--service", "shop", "--version", ""}, {"stop", "shop", "--version", "v"}} {
		out, err = pave(t, env, append([]string{"__complete"}, args...)...)
		if err != nil || !strings.HasPrefix(out, "v2\n:4\n") {
			t.Errorf("complete a version: pave %q: %v\n%s", args, err, out)
		}
	}
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		if out, err := pave(t, env, "completion", shell); err != nil || !strings.Contains(out, "__complete") {
			t.Errorf("completion %s: %v", shell, err)
		}
	}
}

func TestArgumentErrorsHelp(t *testing.T) {
	env := []string{"PAVE_SERVER=127.0.0.1:1", "XDG_CONFIG_HOME=" + t.TempDir()}
	for args, want := range map[string]string{
		"relase":                       `Did you mean this?` + "\n\trelease",
		"release statsu orders":        "did you mean `pave release status`?",
		"release histroy":              "did you mean `pave release history`?",
		"traffic shw":                  `unknown command "shw" for "pave traffic"; did you mean "show"?`,
		"release status":               "missing a release or service name\nusage: pave release status NAME|SERVICE",
		"traffic routes set":           "missing at least one route [HOST]/PREFIX=SERVICE",
		"traffic set orders":           "missing SERVICE and at least one VERSION=PERCENT",
		"release list --nope":          "unknown flag: --nope\nusage: pave release list",
		"release list -o xml":          `-o "xml": want text, wide, json, yaml, name or jsonpath=TEMPLATE`,
		"release list -o jsonpath={.a": "-o jsonpath template",
	} {
		out, err := pave(t, env, strings.Fields(args)...)
		if exitOf(err) != exitError || !strings.Contains(out, want) {
			t.Errorf("pave %s: exit %d, want 1 and %q:\n%s", args, exitOf(err), want, out)
		}
	}
}

func TestNormaliseServer(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:7070":           "http://127.0.0.1:7070",
		"localhost:7070":           "http://localhost:7070",
		"[::1]:7070":               "http://[::1]:7070",
		"pave.example.com:7070":    "https://pave.example.com:7070",
		"http://10.0.0.1:7070/":    "http://10.0.0.1:7070",
		"https://pave.example.com": "https://pave.example.com",
	} {
		if got, err := normaliseServer(in); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
	}
	if _, err := normaliseServer("ftp://x"); err == nil {
		t.Error("ftp:// accepted")
	}
}

func TestVersionFromBuildInfo(t *testing.T) {
	out, err := pave(t, nil, "version", "-o", "json")
	if err != nil || !strings.Contains(out, `"version": "dev"`) || !strings.Contains(out, `"module": "github.com/pave-platform/pave"`) {
		t.Fatalf("version: %v\n%s", err, out)
	}
	out, err = pave(t, nil, "version")
	if err != nil || !strings.HasPrefix(out, "pave dev, go1.") || !strings.Contains(out, "no VCS revision") || !strings.Contains(out, "-buildvcs=true") {
		t.Fatalf("version text: %v\n%s", err, out)
	}
}

// adminToken creates an admin token in store, as `pave token create` does.
func adminToken(t *testing.T, store state.Store) string {
	t.Helper()
	_, secret, err := auth.Tokens{Store: store}.Create(context.Background(), "test-admin", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// anyRunRoot lets a test server accept any local path, for tests of other
// things than the run roots.
func anyRunRoot(t *testing.T) server.RunRoots {
	t.Helper()
	rr, err := server.NewRunRoots([]string{"/"})
	if err != nil {
		t.Fatal(err)
	}
	return rr
}
