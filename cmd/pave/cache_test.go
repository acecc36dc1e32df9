package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// runCacheServer runs `pave cache serve` as its own process and waits
// until it answers.
func runCacheServer(t *testing.T, dir string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(paveBin(), append([]string{"cache", "serve", "--addr", addr, "--dir", dir}, args...)...)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(30 * time.Second); ; {
		res, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			res.Body.Close()
			return cmd, "http://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("pave cache serve did not answer within 30s: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeTestModule writes a module of a few packages that import little of
// the standard library, so a build from an empty GOCACHE stays short.
func writeTestModule(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":          "module example.com/cached\n\ngo 1.24\n",
		"a/a.go":          "package a\n\nimport \"strings\"\n\nfunc Shout(s string) string { return strings.ToUpper(s) + \"!\" }\n",
		"b/b.go":          "package b\n\nimport (\n\t\"sort\"\n\n\t\"example.com/cached/a\"\n)\n\nfunc Sorted(xs []string) []string {\n\tsort.Strings(xs)\n\tfor i := range xs {\n\t\txs[i] = a.Shout(xs[i])\n\t}\n\treturn xs\n}\n",
		"c/c.go":          "package c\n\nimport \"strconv\"\n\nfunc N(i int) string { return strconv.Itoa(i * 7) }\n",
		"cmd/app/main.go": "package main\n\nimport (\n\t\"os\"\n\n\t\"example.com/cached/b\"\n\t\"example.com/cached/c\"\n)\n\nfunc main() {\n\tfor _, s := range b.Sorted([]string{\"b\", c.N(6)}) {\n\t\tos.Stdout.WriteString(s + \"\\n\")\n\t}\n}\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// goBuild builds the module's app as a fresh runner would: an empty
// GOCACHE and an empty local tier, GOCACHEPROG set to the real pave.
func goBuild(t *testing.T, mod, cacheURL, out string) string {
	t.Helper()
	runner := t.TempDir()
	cmd := exec.Command("go", "build", "-o", out, "./cmd/app")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "GOCACHE="+filepath.Join(runner, "gocache"), "GOCACHEPROG="+paveBin()+" cache gocacheprog",
		"PAVE_CACHE_URL="+cacheURL, "PAVE_CACHE_DIR="+filepath.Join(runner, "tier"), "PAVE_CACHE_VERBOSE=1",
		"GOFLAGS=", "GOWORK=off", "GOPROXY=off")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build with GOCACHEPROG failed: %v\n%s", err, stderr.String())
	}
	return stderr.String()
}

// stat pulls one count out of the client's closing line ("N remote hits").
func stat(t *testing.T, stderr, what string) int {
	t.Helper()
	i := strings.Index(stderr, " "+what)
	if i < 0 {
		t.Fatalf("no %q in the client's output:\n%s", what, stderr)
	}
	j := strings.LastIndexAny(stderr[:i], " (") + 1
	var n int
	fmt.Sscan(stderr[j:i], &n)
	return n
}

func TestCacheSharedBuildWithRealGo(t *testing.T) {
	t.Parallel()
	server, url := runCacheServer(t, t.TempDir())
	mod := writeTestModule(t)
	bins := t.TempDir()

	// Runner 1 fills the server.
	first := goBuild(t, mod, url, filepath.Join(bins, "one"))
	if stat(t, first, "uploaded") == 0 || stat(t, first, "upload errors") != 0 {
		t.Fatalf("runner 1 uploaded nothing or failed:\n%s", first)
	}

	// Runner 2, empty GOCACHE and local tier: everything comes from the
	// server, and the binary is the same to the byte.
	second := goBuild(t, mod, url, filepath.Join(bins, "two"))
	// A few link actions name files of the runner's own tier, so they
	// miss; every compile must hit.
	if hits, gets := stat(t, second, "remote hits"), stat(t, second, "gets"); hits < gets*9/10 {
		t.Fatalf("runner 2 did not build from the server's cache:\n%s", second)
	}
	sameFile(t, filepath.Join(bins, "one"), filepath.Join(bins, "two"))

	// Runner 3 reaches the server through a proxy that kills the server
	// (SIGKILL) at the fifth request: the build must go on locally and say
	// so once.
	var seen atomic.Int64
	target, _ := urlParse(url)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorLog = nil
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1) == 5 {
			server.Process.Signal(syscall.SIGKILL)
			server.Wait()
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	third := goBuild(t, mod, front.URL, filepath.Join(bins, "three"))
	if n := strings.Count(third, "unavailable"); n != 1 {
		t.Fatalf("the client said %d times that the server is gone, want once:\n%s", n, third)
	}
	if seen.Load() < 5 || stat(t, third, "misses") == 0 {
		t.Fatalf("the server was not killed mid-build (%d requests):\n%s", seen.Load(), third)
	}
	sameFile(t, filepath.Join(bins, "one"), filepath.Join(bins, "three"))
	out, err := exec.Command(filepath.Join(bins, "three")).Output()
	if err != nil || string(out) != "42!\nB!\n" {
		t.Fatalf("the binary built without the server runs wrong: %v %q", err, out)
	}
}

func urlParse(s string) (*url.URL, error) { return url.Parse(s) }

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	x, err1 := os.ReadFile(a)
	y, err2 := os.ReadFile(b)
	if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
		t.Fatalf("%s and %s differ (%v %v; %d and %d bytes)", a, b, err1, err2, len(x), len(y))
	}
}

func TestCacheServerKilledDuringUploads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	server, url := runCacheServer(t, dir)
	const n = 1000
	blobs := make([][]byte, n)
	keys := make([]string, n)
	for i := range blobs {
		blobs[i] = make([]byte, 32<<10)
		rand.Read(blobs[i])
		s := sha256.Sum256(blobs[i])
		keys[i] = hex.EncodeToString(s[:])
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}, Timeout: 30 * time.Second}
	var done atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A slow body: the server is killed while many are half sent.
			body := io.MultiReader(bytes.NewReader(blobs[i][:16<<10]), slowReader{}, bytes.NewReader(blobs[i][16<<10:]))
			req, _ := http.NewRequest("PUT", url+"/cas/"+keys[i], body)
			req.ContentLength = int64(len(blobs[i]))
			if res, err := client.Do(req); err == nil {
				res.Body.Close()
				if res.StatusCode == 200 {
					done.Add(1)
				}
			}
		}()
	}
	for deadline := time.Now().Add(60 * time.Second); done.Load() < 100 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	server.Process.Signal(syscall.SIGKILL)
	server.Wait()
	wg.Wait()
	if done.Load() == 0 || done.Load() == n {
		t.Fatalf("%d of %d uploads finished before the kill; the test needs some of each", done.Load(), n)
	}

	_, url = runCacheServer(t, dir)
	served := 0
	for i, k := range keys {
		res, err := http.Get(url + "/cas/" + k)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		switch res.StatusCode {
		case 200:
			served++
			if !bytes.Equal(b, blobs[i]) {
				t.Fatalf("after the crash, %s serves %d bytes that are not what was uploaded", k[:12], len(b))
			}
		case 404:
		default:
			t.Fatalf("after the crash, GET %s: %d", k[:12], res.StatusCode)
		}
	}
	if int64(served) < done.Load() {
		t.Fatalf("%d uploads were acknowledged before the kill but only %d are served", done.Load(), served)
	}
	if tmps, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmps) != 0 {
		t.Fatalf("%d partial uploads left after restart", len(tmps))
	}
	t.Logf("%d of %d acknowledged before the kill; %d served after restart", done.Load(), n, served)
}

// slowReader delays a body once, then ends.
type slowReader struct{}

func (slowReader) Read([]byte) (int, error) { time.Sleep(20 * time.Millisecond); return 0, io.EOF }

func TestCacheServeRefusesOpenAddressWithoutTokens(t *testing.T) {
	t.Parallel()
	out, err := pave(t, nil, "cache", "serve", "--addr", "0.0.0.0:0", "--dir", t.TempDir())
	if err == nil || !strings.Contains(out, "needs --tokens FILE") {
		t.Fatalf("pave cache serve on 0.0.0.0 without tokens: %v\n%s", err, out)
	}
	out, err = pave(t, nil, "cache", "serve", "--max-size", "lots", "--dir", t.TempDir())
	if err == nil || !strings.Contains(out, "--max-size") {
		t.Fatalf("bad --max-size: %v\n%s", err, out)
	}
}
