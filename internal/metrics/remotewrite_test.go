package metrics

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// receiver is Debian's Prometheus started with its remote-write receiver
// on a free loopback port in a temp dir.
type receiver struct {
	addr string
	dir  string
	cmd  *exec.Cmd
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startReceiver(t *testing.T, addr, dir string) *receiver {
	t.Helper()
	bin := tool(t, "prometheus")
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1h\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--web.enable-remote-write-receiver")
	logf, _ := os.Create(filepath.Join(dir, "prometheus.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &receiver{addr: addr, dir: dir, cmd: cmd}
	t.Cleanup(r.stop)
	eventually(t, 30*time.Second, "prometheus ready", func() (bool, string) {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	return r
}

func (r *receiver) stop() {
	if r.cmd.ProcessState == nil {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		_ = r.cmd.Wait()
	}
}

// count asks the receiver how many samples of expr it holds in [from, now].
func (r *receiver) count(t *testing.T, expr string, from time.Time) (float64, string) {
	t.Helper()
	q := fmt.Sprintf("sum(count_over_time(%s[%ds]))", expr, int(time.Since(from).Seconds())+5)
	resp, err := http.Get("http://" + r.addr + "/api/v1/query?" + url.Values{"query": {q}}.Encode())
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var a struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || len(a.Data.Result) == 0 {
		return 0, fmt.Sprint("no result ", err)
	}
	var v float64
	fmt.Sscan(fmt.Sprint(a.Data.Result[0].Value[1]), &v)
	return v, ""
}

// TestRemoteWriteToPrometheus sends every scraped sample to a real
// Prometheus' remote-write receiver, including what was scraped while
// the receiver was down: the queue reads the WAL and retries with
// backoff, so nothing acknowledged by the TSDB is lost.
func TestRemoteWriteToPrometheus(t *testing.T) {
	t.Parallel()
	target := newKitLikeTarget(t, "v7")
	addr := freeAddr(t)
	s, api := openStore(t, Options{RemoteWrite: []string{"http://" + addr + "/api/v1/write"}})
	start := time.Now()
	s.SetTargets(JobServices, []Target{{Address: target.addr(), Labels: map[string]string{"service": "ledger", "cluster": "local"}}})

	// The receiver is down for the first scrapes.
	eventually(t, 20*time.Second, "three scrapes while the receiver is down", func() (bool, string) {
		_, v := instantValue(t, api.URL, `count_over_time(up{service="ledger"}[5m])`)
		return v >= "3", v
	})
	_, local := instantValue(t, api.URL, fmt.Sprintf(`count_over_time(up{service="ledger"}[%ds])`, int(time.Since(start).Seconds())+5))
	var before float64
	fmt.Sscan(local, &before)

	r := startReceiver(t, addr, t.TempDir())
	eventually(t, 60*time.Second, "the samples from before the receiver started arrive", func() (bool, string) {
		n, why := r.count(t, `up{service="ledger",cluster="local",job="services"}`, start)
		return n >= before, fmt.Sprintf("receiver has %v of the %v scraped while it was down %s", n, before, why)
	})
	n, _ := r.count(t, `http_server_requests_total{service="ledger",version="v7",status_class="5xx"}`, start)
	if n < before {
		t.Errorf("receiver has %v samples of the 5xx counter, want at least %v", n, before)
	}
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = r.cmd.Wait()
}
