package flowtest

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/testproc"
)

// tourCommands returns the shell commands of the README's tour, in order:
// the test runs the README itself, so the two cannot drift apart.
func tourCommands(t *testing.T, readme string) []string {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "## A short tour")
	if i < 0 {
		t.Fatal("README.md has no \"## A short tour\" section")
	}
	s = s[i:]
	start := strings.Index(s, "```sh\n")
	end := strings.Index(s[start+6:], "```")
	if start < 0 || end < 0 {
		t.Fatal("the tour has no sh code block")
	}
	var cmds []string
	for _, line := range strings.Split(s[start+6:start+6+end], "\n") {
		if line = strings.TrimSpace(line); line != "" {
			cmds = append(cmds, line)
		}
	}
	return cmds
}

// The README's tour, verbatim, with the real binary: the ports are
// replaced by free ones (other tests run beside it) and `open` by a GET of
// the same page. v1 runs from `pave run`; the first release of v2 is a
// canary at 1% with v1 as stable; abort rolls it back.
func TestReadmeTour(t *testing.T) {
	if testing.Short() {
		t.Skip("the tour builds a generated service; run without -short")
	}
	// It drives the binary the README builds (no shared state), and
	// mostly waits on releases, so it overlaps TestDemo.
	t.Parallel()
	repo, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	// The tour builds pave, and the service it generates compiles the
	// checkout's kit: the go command's test cache must see their sources.
	testproc.DeclareGoBuild(t, repo, "./cmd/pave", "github.com/pave-platform/pave/kit/...")
	work := t.TempDir()
	// A checkout's layout: pave new finds kit beside it and builds
	// offline, and the service it writes sits inside the checkout's Go
	// workspace, which does not use it.
	for _, f := range []string{"kit", "go.work", "go.mod", "go.sum"} {
		if err := os.Symlink(filepath.Join(repo, f), filepath.Join(work, f)); err != nil {
			t.Fatal(err)
		}
	}
	api, otlp, gw := freeAddr(t), freeAddr(t), freeAddr(t)
	port := func(a string) string { return a[strings.LastIndex(a, ":")+1:] }
	env := append(os.Environ(), "PAVE_SERVER=http://"+api, "PAVE_HTTP_ADDR="+api, "PAVE_OTLP_ADDR="+otlp, "PAVE_GATEWAY_ADDR="+gw)
	// What some commands must print; a command whose output follows the
	// release engine is retried until it does (the release gets ready
	// first), at most 90s.
	want := map[int][]string{}
	traffic := 0
	for i, c := range tourCommands(t, filepath.Join(repo, "README.md")) {
		c = strings.ReplaceAll(c, ":8080", ":"+port(gw))
		c = strings.ReplaceAll(c, ":7070", ":"+port(api))
		t.Logf("$ %s", c)
		switch {
		case strings.HasPrefix(c, "go build"):
			cmd := exec.Command("sh", "-c", strings.Replace(c, "bin/pave", filepath.Join(work, "bin", "pave"), 1))
			cmd.Dir = repo
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", c, err, out)
			}
		case strings.HasSuffix(withoutComment(c), "&"):
			line := strings.TrimSuffix(withoutComment(c), "&")
			up := exec.Command("sh", "-c", "exec "+line)
			up.Dir, up.Env = work, env
			var out lockedBuffer
			up.Stdout, up.Stderr = &out, &out
			if err := up.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				// Services outlive pave up on purpose; the test leaves none.
				stop := exec.Command(filepath.Join(work, "bin", "pave"), "stop", "orders")
				stop.Env = env
				if out, err := stop.CombinedOutput(); err != nil {
					t.Errorf("pave stop orders: %v\n%s", err, out)
				}
				for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
					resp, err := http.Get("http://" + api + "/api/v1/runtime/orders")
					if err == nil {
						resp.Body.Close()
						if resp.StatusCode == http.StatusNotFound {
							break
						}
					}
				}
				_ = up.Process.Signal(syscall.SIGTERM)
				_ = up.Wait()
				if t.Failed() {
					t.Logf("pave up:\n%s", out.String())
				}
			})
			waitHTTP(t, "http://"+api+"/healthz")
		case strings.HasPrefix(c, "open "):
			waitHTTP(t, strings.Fields(c)[1])
		default:
			if strings.Contains(c, "traffic show") {
				traffic++
				want[i] = []string{"v1=99", "v2=1"}
				if traffic == 2 {
					want[i] = []string{"v1=100"}
				}
			}
			if strings.Contains(c, "release abort") {
				want[i] = []string{"aborted"}
			}
			if strings.HasPrefix(c, "curl") {
				want[i] = []string{"world"}
			}
			if strings.HasPrefix(c, "bin/pave version") {
				want[i] = []string{versionWant(t, repo)}
			}
			deadline := time.Now().Add(90 * time.Second)
			for {
				cmd := exec.Command("sh", "-c", c)
				cmd.Dir, cmd.Env = work, env
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				err := cmd.Run()
				missing := ""
				for _, w := range want[i] {
					if !strings.Contains(out.String(), w) {
						missing = w
					}
				}
				if err == nil && missing == "" {
					t.Logf("%s", out.String())
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: %v, output lacks %q:\n%s", c, err, missing, out.String())
				}
				time.Sleep(time.Second)
			}
		}
	}
	// The release took the running v1 as stable, with its 2 replicas.
	out, err := exec.Command(filepath.Join(work, "bin", "pave"), "--server", "http://"+api, "release", "status", "orders-v2", "-o", "json").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"stable": "v1"`) || !strings.Contains(string(out), `"replicas": 2`) {
		t.Fatalf("the tour's release: %v\n%s", err, out)
	}
}

// versionWant is what the tour's binary says of its commit: in a clone
// (a .git directory), the revision of HEAD, as -buildvcs=true stamps it; in
// a git worktree, where Go stamps nothing, why it has none.
func versionWant(t *testing.T, repo string) string {
	t.Helper()
	fi, err := os.Stat(filepath.Join(repo, ".git"))
	if err != nil || !fi.IsDir() {
		return "no VCS revision"
	}
	rev, err := exec.Command("git", "-C", repo, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD in %s: %v (the tour's build stamps the commit with git)", repo, err)
	}
	return "(" + strings.TrimSpace(string(rev))[:12]
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v %v", url, err, resp)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func withoutComment(line string) string {
	if i := strings.Index(line, " #"); i >= 0 {
		line = line[:i]
	}
	return strings.TrimSpace(line)
}
