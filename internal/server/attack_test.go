package server

// The attack suite: each way issue 12 found to act on Pave without a
// credential, tried against a real server over HTTP, asserting both the
// refusal and that nothing changed in state.

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pave-platform/pave/internal/auth"
	"github.com/pave-platform/pave/internal/fleet"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/release/releasetest"
)

type attackRig struct {
	ts       *httptest.Server
	tokens   auth.Tokens
	engine   *release.Engine
	registry *fleet.Registry
	root     string // the one run root
	key      []byte // the local-proof key
	admin    string
	deployer string
	viewer   string
}

func newAttackRig(t *testing.T) *attackRig {
	t.Helper()
	rig := releasetest.NewRig(t, nil)
	a := &attackRig{tokens: auth.Tokens{Store: rig.Store}, engine: rig.Engine, root: t.TempDir()}
	roots, err := NewRunRoots([]string{a.root})
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	if a.key, err = auth.EnsureLocalKey(data); err != nil {
		t.Fatal(err)
	}
	a.registry = &fleet.Registry{Store: rig.Store, DataDir: data}
	s := New(Options{Tokens: a.tokens, Open: true, RunRoots: roots, Log: slog.New(slog.DiscardHandler)})
	ReleaseAPI{Engine: rig.Engine}.Register(s)
	ClustersAPI{Registry: a.registry, LocalKey: a.key}.Register(s)
	a.ts = httptest.NewServer(s)
	t.Cleanup(a.ts.Close)
	ctx := context.Background()
	_, a.admin, _ = a.tokens.Create(ctx, "admin", auth.RoleAdmin)
	_, a.deployer, _ = a.tokens.Create(ctx, "deployer", auth.RoleDeployer)
	_, a.viewer, _ = a.tokens.Create(ctx, "viewer", auth.RoleViewer)
	return a
}

// send makes one raw request; headers are given exactly (nothing added).
func (a *attackRig) send(t *testing.T, method, path, body string, headers map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, a.ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// snapshot is the state an attack must not change.
func (a *attackRig) snapshot(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	toks, err := a.tokens.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rels, err := a.engine.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cls, err := a.registry.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, x := range toks {
		b.WriteString("token " + x.ID + " " + x.Role + "\n")
	}
	for _, x := range rels {
		b.WriteString("release " + x.Metadata.Name + " " + string(x.Status.Phase) + "\n")
	}
	for _, x := range cls {
		b.WriteString("cluster " + x.Name + "\n")
	}
	return b.String()
}

func TestAttacksFromWebPagesAreRefusedAndChangeNothing(t *testing.T) {
	a := newAttackRig(t)
	bin := filepath.Join(a.root, "shop")
	spec := `{"apiVersion":"pave.dev/v1alpha1","kind":"Release","spec":{"service":"shop","version":"v2","binary":"` + bin + `"}}`
	before := a.snapshot(t)
	evil := "http://evil.example"
	attacks := []struct {
		name, method, path, body string
		headers                  map[string]string
		want                     int
		says                     string
	}{
		{"form POST creating an admin token", "POST", "/api/v1/tokens", "role=admin",
			map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": evil, "Sec-Fetch-Site": "cross-site"}, 403, "cross-origin"},
		{"form POST without browser metadata", "POST", "/api/v1/tokens", "role=admin",
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "application/json"},
		{"fetch text/plain promoting", "POST", "/api/v1/releases/shop-v2/promote", "{}",
			map[string]string{"Content-Type": "text/plain", "Origin": evil}, 403, "Origin"},
		{"text/plain with no Origin (old browser, sendBeacon)", "POST", "/api/v1/releases", spec,
			map[string]string{"Content-Type": "text/plain;charset=UTF-8"}, 415, "application/json"},
		{"multipart form", "POST", "/api/v1/releases", spec,
			map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, 415, "application/json"},
		{"JSON from another origin even with a token", "POST", "/api/v1/tokens", `{"role":"admin"}`,
			map[string]string{"Content-Type": "application/json", "Origin": evil, "Authorization": "Bearer " + a.admin}, 403, "evil.example"},
		{"JSON marked cross-site by the browser", "POST", "/api/v1/tokens", `{"role":"admin"}`,
			map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site", "Authorization": "Bearer " + a.admin}, 403, "Sec-Fetch-Site"},
		{"JSON from another port of localhost (same-site)", "POST", "/api/v1/tokens", `{"role":"admin"}`,
			map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-site", "Origin": "http://localhost:3000"}, 403, "cross-origin"},
		{"DNS rebinding: same-origin JSON to evil.example", "POST", "/api/v1/tokens", `{"role":"admin"}`,
			map[string]string{"Content-Type": "application/json", "Host": "evil.example:7070", "Origin": "http://evil.example:7070", "Sec-Fetch-Site": "same-origin"}, 421, "not a name of this server"},
		{"DNS rebinding: reading releases", "GET", "/api/v1/releases", "",
			map[string]string{"Host": "evil.example:7070"}, 421, "--http-allowed-hosts"},
		{"DNS rebinding: reading the local credential's path", "GET", "/api/v1/local-credential", "",
			map[string]string{"Host": "evil.example"}, 421, "not a name"},
		{"cross-site read of the API", "GET", "/api/v1/releases", "",
			map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "cross-origin"},
		{"loopback is not trust: JSON without a token", "POST", "/api/v1/tokens", `{"role":"admin"}`,
			map[string]string{"Content-Type": "application/json"}, 401, "admin.token"},
		{"loopback is not trust: release without a token", "POST", "/api/v1/releases", spec,
			map[string]string{"Content-Type": "application/json"}, 401, "token"},
		{"null Origin (sandboxed frame)", "POST", "/api/v1/releases", spec,
			map[string]string{"Content-Type": "application/json", "Origin": "null", "Authorization": "Bearer " + a.deployer}, 403, "cross-origin"},
		{"viewer token may not create", "POST", "/api/v1/releases", spec,
			map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + a.viewer}, 403, "needs deployer"},
	}
	for _, at := range attacks {
		code, body := a.send(t, at.method, at.path, at.body, at.headers)
		if code != at.want || !strings.Contains(body, at.says) {
			t.Errorf("%s: %d %s; want %d saying %q", at.name, code, body, at.want, at.says)
		}
	}
	if after := a.snapshot(t); after != before {
		t.Fatalf("state changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// The same request, sent properly, works: the refusals above were the
	// defences, not a broken route.
	code, body := a.send(t, "POST", "/api/v1/releases", spec, map[string]string{"Content-Type": "application/json",
		"Authorization": "Bearer " + a.deployer, "Origin": a.ts.URL, "Sec-Fetch-Site": "same-origin"})
	if code != 201 {
		t.Fatalf("a same-origin release with a deployer token: %d %s", code, body)
	}
	code, _ = a.send(t, "GET", "/api/v1/releases", "", map[string]string{"Host": "localhost"})
	if code != 200 {
		t.Fatalf("reads on loopback stay open: %d", code)
	}
}

func TestLocalExecutablesOnlyUnderRunRoots(t *testing.T) {
	a := newAttackRig(t)
	outside := t.TempDir()
	link := filepath.Join(a.root, "innocent")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	before := a.snapshot(t)
	for _, c := range []struct {
		name, field, path, says string
		code                    int
	}{
		{"any executable on the machine", "binary", "/bin/sh", "outside the run roots", 403},
		{"a relative path", "binary", "./shop", "must be absolute", 422},
		{"dot-dot out of the root", "source", a.root + "/../" + filepath.Base(outside), "outside the run roots", 403},
		{"a symlink inside the root to outside", "binary", filepath.Join(link, "tool"), "outside the run roots", 403},
	} {
		spec := `{"spec":{"service":"shop","version":"v3","` + c.field + `":"` + c.path + `"}}`
		code, body := a.send(t, "POST", "/api/v1/releases", spec, map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + a.admin})
		if code != c.code || !strings.Contains(body, `"field": "spec.`+c.field+`"`) || !strings.Contains(body, c.says) {
			t.Errorf("%s: %d %s", c.name, code, body)
		}
	}
	if after := a.snapshot(t); after != before {
		t.Fatalf("state changed:\n%s\n%s", before, after)
	}
}

const execKubeconfig = `apiVersion: v1
kind: Config
current-context: c
clusters:
- name: k
  cluster: {server: "https://127.0.0.1:1"}
contexts:
- name: c
  context: {cluster: k, user: u}
users:
- name: u
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: /bin/sh
      args: ["-c", "touch /tmp/pwned"]
      interactiveMode: Never
`

func TestKubeconfigsWithLocalReferencesAreRefused(t *testing.T) {
	a := newAttackRig(t)
	inline := strings.Replace(execKubeconfig, `    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: /bin/sh
      args: ["-c", "touch /tmp/pwned"]
      interactiveMode: Never
`, "    token: abc\n", 1)
	before := a.snapshot(t)
	for _, c := range []struct{ name, kubeconfig, says string }{
		{"exec plugin", execKubeconfig, "users[u].user.exec"},
		{"tokenFile", strings.Replace(inline, "token: abc", "tokenFile: /etc/shadow", 1), "users[u].user.tokenFile"},
		{"client certificate file", strings.Replace(inline, "token: abc", "client-certificate: /home/me/.ssh/id\n    client-key: /home/me/.ssh/key", 1), "users[u].user.client-certificate"},
		{"auth-provider", strings.Replace(inline, "token: abc", "auth-provider: {name: oidc, config: {}}", 1), "users[u].user.auth-provider"},
		{"CA file", strings.Replace(inline, `server: "https://127.0.0.1:1"`, `server: "https://127.0.0.1:1", certificate-authority: /etc/passwd`, 1), "clusters[k].cluster.certificate-authority"},
	} {
		body := mustJSON(t, ClusterAddRequest{Name: "prod", Kubeconfig: c.kubeconfig})
		code, out := a.send(t, "POST", "/api/v1/clusters", body, map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + a.admin})
		if code != 400 || !strings.Contains(out, c.says) || !strings.Contains(out, "--allow-exec") {
			t.Errorf("%s: %d %s", c.name, code, out)
		}
	}
	// --allow-exec through the API alone: a proof made without the key.
	forged := mustJSON(t, ClusterAddRequest{Name: "prod", Kubeconfig: execKubeconfig, AllowExecProof: AllowExecProof([]byte("guess"), "prod", execKubeconfig)})
	code, out := a.send(t, "POST", "/api/v1/clusters", forged, map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + a.admin})
	if code != 403 || !strings.Contains(out, "allowExecProof") {
		t.Errorf("forged --allow-exec: %d %s", code, out)
	}
	// A proof for another kubeconfig does not carry over.
	swapped := mustJSON(t, ClusterAddRequest{Name: "prod", Kubeconfig: execKubeconfig, AllowExecProof: AllowExecProof(a.key, "prod", inline)})
	if code, out := a.send(t, "POST", "/api/v1/clusters", swapped, map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + a.admin}); code != 403 {
		t.Errorf("proof of another kubeconfig: %d %s", code, out)
	}
	if after := a.snapshot(t); after != before {
		t.Fatalf("state changed:\n%s\n%s", before, after)
	}
	// Inline credentials need nothing; the local CLI's proof allows exec.
	if code, out := a.send(t, "POST", "/api/v1/clusters", mustJSON(t, ClusterAddRequest{Name: "inline", Kubeconfig: inline}),
		map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + a.admin}); code != 201 {
		t.Fatalf("inline credentials: %d %s", code, out)
	}
	proved := mustJSON(t, ClusterAddRequest{Name: "prod", Kubeconfig: execKubeconfig, AllowExecProof: AllowExecProof(a.key, "prod", execKubeconfig)})
	if code, out := a.send(t, "POST", "/api/v1/clusters", proved, map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + a.admin}); code != 201 {
		t.Fatalf("--allow-exec with the local proof: %d %s", code, out)
	}
}

func TestOversizedBodyIsRefusedAndServerStillAnswers(t *testing.T) {
	a := newAttackRig(t)
	before := a.snapshot(t)
	big := `{"name":"` + strings.Repeat("x", maxBody+1024) + `","role":"admin"}`
	code, out := a.send(t, "POST", "/api/v1/tokens", big, map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + a.admin})
	if code != 413 || !strings.Contains(out, "too large") {
		t.Fatalf("oversized body: %d %.200s", code, out)
	}
	if code, _ := a.send(t, "GET", "/api/v1/releases", "", nil); code != 200 {
		t.Fatalf("the server stopped answering: %d", code)
	}
	if after := a.snapshot(t); after != before {
		t.Fatalf("state changed:\n%s\n%s", before, after)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := jsonMarshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
