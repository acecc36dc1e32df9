package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/runtime"
	"github.com/pave-platform/pave/internal/server"
)

// plainService answers like a service without kit: no X-Pave-Route.
const plainService = `package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Method, r.URL.Path)
	})
	if err := http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
`

// TestUpCountsByTheRoutesOfPaveYAML: a service without kit lists its
// routes in .pave.yaml; pave up's gateway counts its requests by those
// templates, and by the first path segment where none matches.
func TestUpCountsByTheRoutesOfPaveYAML(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":  "module plain\n\ngo 1.26\n",
		"main.go": plainService,
		".pave.yaml": "# routes the gateway counts requests by\nroutes:\n" +
			"  - GET /v1/orders/{id}\n  - POST /v1/orders\n  - /v1/items/\n",
	} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	gw := freeAddr(t)
	up := startUp(t, t.TempDir(), "--gateway-addr", gw)
	env := []string{"PAVE_SERVER=" + up.api}
	out, progress, err := paveSplit(t, env, "run", "plain", "--version", "v1", "--source", src, "--replicas", "1", "-o", "json")
	if err != nil {
		t.Fatalf("pave run: %v\n%s\n%s\n%s", err, out, progress, up.out)
	}
	var st runtime.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Ready != 1 {
		t.Fatalf("pave run -o json: %v %q", err, out)
	}
	t.Cleanup(func() {
		for _, in := range st.Instances {
			_ = syscall.Kill(-in.PID, syscall.SIGKILL)
		}
	})

	send := func(method, path string, n int) {
		t.Helper()
		for i := range n {
			req, _ := http.NewRequest(method, fmt.Sprintf("http://%s%s", gw, strings.ReplaceAll(path, "N", fmt.Sprint(i))), nil)
			req.Host = "plain.localhost"
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
			}
		}
	}
	send("GET", "/v1/orders/N", 7)
	send("POST", "/v1/orders", 3)
	send("GET", "/v1/items/a/N", 4)
	send("GET", "/health/N", 2)

	want := map[string]uint64{"GET /v1/orders/{id}": 7, "POST /v1/orders": 3, "/v1/items/": 4, "/health": 2}
	var got map[string]uint64
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := pave(t, env, "traffic", "show", "plain", "-o", "json")
		var view server.TrafficView
		if err != nil || json.Unmarshal([]byte(out), &view) != nil {
			t.Fatalf("traffic show: %v\n%s", err, out)
		}
		got = map[string]uint64{}
		for route, c := range view.Stats["v1"].Routes {
			got[route] = c.Requests
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("per-route requests %v, want %v", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A bad route list is refused at deploy, naming the file and the entry.
	if err := os.WriteFile(filepath.Join(src, ".pave.yaml"), []byte("routes:\n  - GET v1/x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = pave(t, env, "run", "plain", "--version", "v2", "--source", src, "--replicas", "1")
	if err == nil || !strings.Contains(out, ".pave.yaml") || !strings.Contains(out, "routes[0]") {
		t.Fatalf("a bad route list: %v\n%s", err, out)
	}
}
