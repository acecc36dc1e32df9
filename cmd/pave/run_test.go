package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/runtime"
	"github.com/pave-platform/pave/internal/server"
)

const echoService = `package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "echo %s pid %d", os.Getenv("PAVE_VERSION"), os.Getpid())
	})
	fmt.Println("echo listening")
	if err := http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
`

// echoSource writes echoService as a module in a new directory.
func echoSource(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	for name, body := range map[string]string{"go.mod": "module echo\n\ngo 1.26\n", "main.go": echoService} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

// paveSplit runs pave with stdout and stderr apart: JSON on one, progress
// on the other.
func paveSplit(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(paveBin(), args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func viaGateway(t *testing.T, gateway, host string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+gateway+"/", nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRunPsStopSurviveKill9(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	src := echoSource(t)
	var pids []int
	t.Cleanup(func() { // instances live in their own sessions: never leak them
		for _, pid := range pids {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
	})
	gw1 := freeAddr(t)
	up1 := startUp(t, data, "--gateway-addr", gw1)
	env := []string{"PAVE_SERVER=" + up1.api}

	out, progress, err := paveSplit(t, env, "run", "echo", "--version", "v1", "--source", src, "--replicas", "2", "-o", "json")
	if err != nil {
		t.Fatalf("pave run: %v\n%s\n%s\n%s", err, out, progress, up1.out)
	}
	var st runtime.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("pave run -o json printed %q: %v", out, err)
	}
	if st.Ready != 2 || len(st.Instances) != 2 || len(st.Endpoints) != 2 {
		t.Fatalf("after pave run: %+v", st)
	}
	for _, in := range st.Instances {
		pids = append(pids, in.PID)
	}
	for _, want := range []string{"building echo v1 from " + src, "echo v1: 2/2 ready"} {
		if !strings.Contains(progress, want) {
			t.Errorf("progress output lacks %q:\n%s", want, progress)
		}
	}
	if code, body := viaGateway(t, gw1, "echo.localhost"); code != 200 || !strings.HasPrefix(body, "echo v1") {
		t.Fatalf("through the gateway: %d %q", code, body)
	}

	// The instances' output reaches the telemetry store.
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(up1.api + "/api/v1/logs?service=echo&contains=echo+listening")
		if err != nil {
			t.Fatal(err)
		}
		var res struct {
			Logs []struct {
				Message string            `json:"message"`
				Version string            `json:"version"`
				Attrs   map[string]string `json:"attrs"`
			} `json:"logs"`
		}
		err = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Logs) == 2 && res.Logs[0].Version == "v1" && res.Logs[0].Attrs["stream"] == "stdout" && strings.HasPrefix(res.Logs[0].Attrs["instance"], "echo-v1-") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the instances' output never reached the telemetry store: %+v", res)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// kill -9 of the control plane: instances keep running.
	if err := up1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-up1.done
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err != nil {
			t.Fatalf("instance %d died with the control plane: %v", pid, err)
		}
	}

	gw2 := freeAddr(t)
	up2 := startUp(t, data, "--gateway-addr", gw2)
	env = []string{"PAVE_SERVER=" + up2.api}
	var list server.RuntimeList
	deadline = time.Now().Add(60 * time.Second)
	for {
		out, _, err := paveSplit(t, env, "ps", "-o", "json")
		if err != nil {
			t.Fatalf("pave ps: %v %s", err, out)
		}
		list = server.RuntimeList{}
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("pave ps -o json printed %q: %v", out, err)
		}
		if len(list.Deployments) == 1 && list.Deployments[0].Ready == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("instances never adopted: %+v\n%s", list, up2.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, in := range list.Deployments[0].Instances {
		if !in.Adopted || (in.PID != pids[0] && in.PID != pids[1]) {
			t.Fatalf("instance %+v: want one of the running pids %v, adopted", in, pids)
		}
	}
	if code, body := viaGateway(t, gw2, "echo.localhost"); code != 200 || !strings.HasPrefix(body, "echo v1") {
		t.Fatalf("through the new gateway: %d %q\n%s", code, body, up2.out)
	}
	text, _, err := paveSplit(t, env, "ps")
	if err != nil || !strings.Contains(text, "ready (adopted)") || !strings.Contains(text, "echo-v1-0") {
		t.Fatalf("pave ps: %v\n%s", err, text)
	}

	out, progress, err = paveSplit(t, env, "stop", "echo")
	if err != nil || !strings.Contains(out, "echo v1 stopped") || !strings.Contains(progress, "stopping echo v1 (2 instance(s))") {
		t.Fatalf("pave stop: %v\n%s\n%s", err, out, progress)
	}
	for _, pid := range pids {
		// A zombie waiting for init to reap it has no cmdline.
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil && len(b) > 0 {
			t.Errorf("instance %d still runs after pave stop", pid)
		}
	}
	if code, _ := viaGateway(t, gw2, "echo.localhost"); code == 200 {
		t.Errorf("the gateway still routes to a stopped service")
	}
	_, errOut, err := paveSplit(t, env, "stop", "echo")
	if err == nil || !strings.Contains(errOut, "service echo has no version running") {
		t.Fatalf("second stop: %v %s", err, errOut)
	}
	_, errOut, err = paveSplit(t, env, "run", "echo", "--version", "v2", "--binary", filepath.Join(src, "missing"))
	if err == nil || !strings.Contains(errOut, "binary: ") || !strings.Contains(errOut, "does not exist") {
		t.Fatalf("run with a missing binary: %v %s", err, errOut)
	}
}
