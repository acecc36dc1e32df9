package scaffold

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/pave-platform/pave/internal/testproc"
)

// tool finds a real tool on PATH or fails saying how the test script gets it.
func tool(t *testing.T, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not on PATH: %s", name, install)
	}
	return p
}

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// repoRoot is Pave's checkout, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func TestRulesPassPromtool(t *testing.T) {
	promtool := tool(t, "promtool", "install the Debian package prometheus (scripts/test.sh installs it)")
	for v := 1; v <= CurrentVersion(); v++ {
		files, err := Render(testAnswers(), v)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		rules := filepath.Join(dir, "slo-rules.yaml")
		if err := os.WriteFile(rules, files["observability/slo-rules.yaml"], 0o644); err != nil {
			t.Fatal(err)
		}
		out := run(t, dir, nil, promtool, "check", "rules", rules)
		if !strings.Contains(out, "SUCCESS: 22 rules found") {
			t.Errorf("v%d: promtool: %s", v, out)
		}
	}
}

// The burn-rate alerts behave: a total outage pages within minutes, a burn
// just under the slowest alert's rate stays silent, and healthy traffic never
// alerts. promtool evaluates the rules over synthetic series.
func TestRulesFireOnBurnWithPromtool(t *testing.T) {
	promtool := tool(t, "promtool", "install the Debian package prometheus (scripts/test.sh installs it)")
	files, err := Render(testAnswers(), CurrentVersion())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "slo-rules.yaml"), files["observability/slo-rules.yaml"], 0o644); err != nil {
		t.Fatal(err)
	}
	// 10 requests/s each minute (600 per minute); the "5xx" series carries
	// the failures. The le=0.25 bucket holds the fast requests. The outage
	// runs from 30m to 38m and then traffic stops, so the 1h ratio the
	// description shows is the same at 38m, 39m and 40m: promtool may
	// evaluate the alert against the recorded ratio of the minute before.
	test := `rule_files: [slo-rules.yaml]
evaluation_interval: 1m
tests:
  - name: outage pages
    interval: 1m
    input_series:
      - series: 'http_server_requests_total{service="orders",status_class="2xx"}'
        values: '0+600x30 18000x30'
      - series: 'http_server_requests_total{service="orders",status_class="5xx"}'
        values: '0x30 0+600x8 4800x22'
      - series: 'http_server_request_duration_seconds_bucket{service="orders",le="0.25"}'
        values: '0+600x60'
      - series: 'http_server_request_duration_seconds_count{service="orders"}'
        values: '0+600x60'
    alert_rule_test:
      - eval_time: 25m
        alertname: OrdersErrorBudgetBurn
        exp_alerts: []
      - eval_time: 40m
        alertname: OrdersErrorBudgetBurn
        exp_alerts:
          - exp_labels: {severity: page, window: 1h, service: orders, owner: payments, slo: availability}
            exp_annotations:
              summary: orders burns its availability error budget 14.4x too fast
              description: 5xx ratio 21.05% over 1h and 5m; at this rate the 30-day budget lasts 2 days.
      - eval_time: 40m
        alertname: OrdersLatencyBudgetBurn
        exp_alerts: []
  - name: healthy and slightly slow stays quiet
    interval: 1m
    input_series:
      - series: 'http_server_requests_total{service="orders",status_class="2xx"}'
        values: '0+600x120'
      - series: 'http_server_request_duration_seconds_bucket{service="orders",le="0.25"}'
        values: '0+597x120'
      - series: 'http_server_request_duration_seconds_count{service="orders"}'
        values: '0+600x120'
    alert_rule_test:
      - eval_time: 110m
        alertname: OrdersLatencyBudgetBurn
        exp_alerts: []
      - eval_time: 110m
        alertname: OrdersErrorBudgetBurn
        exp_alerts: []
`
	if err := os.WriteFile(filepath.Join(dir, "slo-test.yaml"), []byte(test), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, dir, nil, promtool, "test", "rules", "slo-test.yaml")
}

// lintWorkflows runs actionlint on the generated caller and Pave's reusable
// workflow in one repository, with the caller pointed at the local copy so
// actionlint checks the inputs and secrets it passes against the reusable
// workflow's declared types.
func lintWorkflows(t *testing.T, caller []byte) (string, error) {
	t.Helper()
	actionlint := tool(t, "actionlint", "build it outside the repository with `GOBIN=<dir> go install github.com/rhysd/actionlint/cmd/actionlint@v1.7.12` and put <dir> on PATH (scripts/test.sh does)")
	reusable, err := os.ReadFile(filepath.Join(repoRoot(t), "ci", "github", "service.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	wf := filepath.Join(dir, ".github", "workflows")
	if err := os.MkdirAll(wf, 0o755); err != nil {
		t.Fatal(err)
	}
	local := bytes.Replace(caller, []byte("pave-platform/pave/.github/workflows/service.yaml@v1"), []byte("./.github/workflows/service.yaml"), 1)
	if bytes.Equal(local, caller) {
		t.Fatalf("the caller does not use pave-platform/pave/.github/workflows/service.yaml@v1:\n%s", caller)
	}
	for name, data := range map[string][]byte{"service.yaml": reusable, "ci.yaml": local, "ci-remote.yaml": caller} {
		if err := os.WriteFile(filepath.Join(wf, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, dir, nil, "git", "init", "-q")
	cmd := exec.Command(actionlint, "-no-color")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestWorkflowsPassActionlint(t *testing.T) {
	for v := 1; v <= CurrentVersion(); v++ {
		files, err := Render(testAnswers(), v)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := lintWorkflows(t, files[".github/workflows/ci.yaml"]); err != nil {
			t.Errorf("v%d: actionlint: %v\n%s", v, err, out)
		}
	}
}

// The cross-check is real: a caller leaving out a required input, or passing
// an input the reusable workflow does not declare, fails actionlint.
func TestActionlintCatchesBadCallerInputs(t *testing.T) {
	files, err := Render(testAnswers(), CurrentVersion())
	if err != nil {
		t.Fatal(err)
	}
	caller := files[".github/workflows/ci.yaml"]
	for _, c := range []struct{ old, new, want string }{
		{"      image: ghcr.io/example/orders\n", "", `input "image" is required`},
		{"      service: orders\n", "      service: orders\n      servise: typo\n", "servise"},
	} {
		bad := bytes.Replace(caller, []byte(c.old), []byte(c.new), 1)
		if bytes.Equal(bad, caller) {
			t.Fatalf("test case does not apply: %q not in\n%s", c.old, caller)
		}
		out, err := lintWorkflows(t, bad)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("actionlint accepted %q (err %v):\n%s", c.new, err, out)
		}
	}
}

func TestDockerfileParsesWithBuildKit(t *testing.T) {
	for v := 1; v <= CurrentVersion(); v++ {
		files, err := Render(testAnswers(), v)
		if err != nil {
			t.Fatal(err)
		}
		res, err := parser.Parse(bytes.NewReader(files["Dockerfile"]))
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		if len(res.Warnings) > 0 {
			t.Errorf("v%d: parser warnings: %+v", v, res.Warnings)
		}
		var lints []string
		lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, _ []parser.Range) {
			lints = append(lints, rule+": "+msg)
		}})
		stages, _, err := instructions.Parse(res.AST, lint)
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		if len(lints) > 0 {
			t.Errorf("v%d: BuildKit lint: %v", v, lints)
		}
		if len(stages) < 2 {
			t.Fatalf("v%d: %d stages, want a multi-stage build", v, len(stages))
		}
		caches := map[string]bool{}
		for _, cmd := range stages[0].Commands {
			if r, ok := cmd.(*instructions.RunCommand); ok {
				// Mount options are parsed when BuildKit expands the
				// command; the identity expander does that here.
				if err := r.Expand(func(w string) (string, error) { return w, nil }); err != nil {
					t.Fatalf("v%d: RUN %v: %v", v, r.CmdLine, err)
				}
				for _, m := range instructions.GetMounts(r) {
					if m.Type == instructions.MountTypeCache {
						caches[m.Target] = true
					}
				}
			}
		}
		if !caches["/go/pkg/mod"] || !caches["/root/.cache/go-build"] {
			t.Errorf("v%d: cache mounts %v, want the module and build caches", v, caches)
		}
		final := stages[len(stages)-1]
		if !strings.Contains(final.BaseName, "distroless/static") {
			t.Errorf("v%d: final image %s is not static distroless", v, final.BaseName)
		}
		var user string
		for _, cmd := range final.Commands {
			if u, ok := cmd.(*instructions.UserCommand); ok {
				user = u.User
			}
		}
		if user == "" || strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root") {
			t.Errorf("v%d: final image runs as %q, want a non-root user", v, user)
		}
	}
}

// goEnv runs the go command offline, outside Pave's workspace.
var goEnv = []string{"GOWORK=off", "GOFLAGS=-mod=mod", "GOPROXY=off", "GOTOOLCHAIN=local"}

// The generated service builds, vets and tests with the real go command,
// offline, against this checkout's kit, and answers HTTP when started.
func TestGeneratedServiceBuildsTestsAndServes(t *testing.T) {
	goCmd := tool(t, "go", "install Go 1.26 (the machine's toolchain)")
	kit := filepath.Join(repoRoot(t), "kit")
	if !IsKitDir(kit) {
		t.Fatalf("%s is not Pave's kit module", kit)
	}
	testproc.DeclareGoBuild(t, kit, "./...") // the go command compiles it; the test cache must see it
	a := testAnswers()
	a.KitReplace = kit
	dir := filepath.Join(t.TempDir(), "orders")
	res, err := New(context.Background(), NewOptions{Answers: a, Dir: dir, GoCommand: goCmd})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.GoSum, "generated") {
		t.Fatalf("go.sum: %s (warm the module cache: cd kit && go mod download)", res.GoSum)
	}
	run(t, dir, goEnv, goCmd, "vet", "./...")
	run(t, dir, goEnv, goCmd, "build", "./...")
	out := run(t, dir, goEnv, goCmd, "test", "-count=1", "./...")
	if !strings.Contains(out, "ok ") {
		t.Errorf("go test: %s", out)
	}

	bin := filepath.Join(t.TempDir(), "orders")
	run(t, dir, goEnv, goCmd, "build", "-o", bin, ".")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	svc := exec.Command(bin)
	svc.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port), "PAVE_VERSION=v-test")
	var logs bytes.Buffer
	svc.Stdout, svc.Stderr = &logs, &logs
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Process.Kill(); _ = svc.Wait() }()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service did not become ready: %v\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get(base + "/v1/greetings/ada")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body.String(), `"Hello, ada!"`) || !strings.Contains(body.String(), "v-test") {
		t.Errorf("GET /v1/greetings/ada: %d %s", resp.StatusCode, body.String())
	}
}
