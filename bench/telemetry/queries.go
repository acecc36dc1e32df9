package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"golang.org/x/sys/unix"
)

// A query class is one kind of question a user asks both stores, each
// through its own query API: Pave's /api/v1/logs and /api/v1/traces (what
// `pave logs` calls), VictoriaLogs' LogsQL at /select/logsql/query.
type queryClass struct {
	name string
	// args returns the i-th query of the class: Pave's URL path+query and
	// VictoriaLogs' LogsQL, and the lines both must find (-1: compare them).
	pave func(i int) string
	vl   func(i int) string
	want func(i int) int
	// count reads an answer: the lines (or, for counts, the total counted).
	paveCount, vlCount func(body []byte) (int, error)
	// whole: the answer covers every match (a count), not a page of them.
	whole bool
}

const pageLimit = 1000

func queryClasses(ds *dataset) []queryClass {
	from, to := ds.start.Format(time.RFC3339Nano), ds.end.Add(time.Minute).Format(time.RFC3339Nano)
	vlRange := fmt.Sprintf("_time:[%s, %s) ", from, to)
	// The 15-minute window: the middle of the data.
	wFrom := ds.start.Add(ds.end.Sub(ds.start) / 2).Truncate(time.Minute)
	wTo := wFrom.Add(15 * time.Minute)
	lines := func(b []byte) (int, error) { return strings.Count(string(b), "\n"), nil }
	paveLines := func(b []byte) (int, error) {
		var r struct {
			Logs []json.RawMessage `json:"logs"`
		}
		err := json.Unmarshal(b, &r)
		return len(r.Logs), err
	}
	return []queryClass{
		{name: "trace lookup",
			pave:      func(i int) string { return "/api/v1/traces/" + ds.traces[i%len(ds.traces)] },
			vl:        func(i int) string { return `trace_id:="` + ds.traces[i%len(ds.traces)] + `"` },
			want:      func(i int) int { return ds.perTr[ds.traces[i%len(ds.traces)]] },
			paveCount: paveLines,
			vlCount:   lines},
		{name: "status=500 AND service=S",
			pave: func(i int) string {
				return "/api/v1/logs?" + url.Values{"service": {services[i%len(services)]}, "where": {"status=500"},
					"from": {from}, "to": {to}, "limit": {strconv.Itoa(pageLimit)}}.Encode()
			},
			vl: func(i int) string {
				return vlRange + `service:="` + services[i%len(services)] + `" AND status:=500 | sort by (_time desc) | limit ` + strconv.Itoa(pageLimit)
			},
			want:      func(int) int { return -1 },
			paveCount: paveLines, vlCount: lines},
		{name: "contains, common (psp timeout)",
			pave: func(int) string {
				return "/api/v1/logs?" + url.Values{"contains": {"psp timeout"}, "from": {from}, "to": {to}, "limit": {strconv.Itoa(pageLimit)}}.Encode()
			},
			vl: func(int) string {
				return vlRange + `"psp timeout" | sort by (_time desc) | limit ` + strconv.Itoa(pageLimit)
			},
			want:      func(int) int { return pageLimit },
			paveCount: paveLines, vlCount: lines},
		{name: "contains, rare (fraud rule R-nnnn)",
			pave: func(i int) string {
				return "/api/v1/logs?" + url.Values{"contains": {ds.rare[i%len(ds.rare)]}, "from": {from}, "to": {to}, "limit": {strconv.Itoa(pageLimit)}}.Encode()
			},
			vl: func(i int) string {
				return vlRange + `"` + ds.rare[i%len(ds.rare)] + `" | sort by (_time desc) | limit ` + strconv.Itoa(pageLimit)
			},
			want:      func(i int) int { return ds.rareN[ds.rare[i%len(ds.rare)]] },
			paveCount: paveLines, vlCount: lines},
		{name: "15-minute count by status", whole: true,
			// Pave's count API adds up whole row groups from their
			// footers and reads only the groups at the window's edges.
			pave: func(int) string {
				return "/api/v1/logs/count?" + url.Values{"by": {"status"}, "from": {wFrom.Format(time.RFC3339Nano)}, "to": {wTo.Format(time.RFC3339Nano)}}.Encode()
			},
			vl: func(int) string {
				return fmt.Sprintf("_time:[%s, %s) | stats by (status) count() n", wFrom.Format(time.RFC3339Nano), wTo.Format(time.RFC3339Nano))
			},
			want: func(int) int { return ds.linesIn(wFrom, wTo) },
			paveCount: func(b []byte) (int, error) {
				var r struct {
					Total int `json:"total"`
				}
				err := json.Unmarshal(b, &r)
				return r.Total, err
			},
			vlCount: func(b []byte) (int, error) {
				total := 0
				for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
					var r struct {
						N string `json:"n"`
					}
					if err := json.Unmarshal([]byte(l), &r); err != nil {
						return 0, fmt.Errorf("%w: %q", err, l)
					}
					n, _ := strconv.Atoi(r.N)
					total += n
				}
				return total, nil
			}},
	}
}

// ask runs the i-th query of class c on p; it returns the lines found (or
// counted).
func (p *proc) ask(c *queryClass, i int) (int, time.Duration, error) {
	start := time.Now()
	if p.name != "pave" {
		b, err := get(p.base + "/select/logsql/query?query=" + url.QueryEscape(c.vl(i)))
		if err != nil {
			return 0, time.Since(start), fmt.Errorf("victorialogs %s: %w", c.name, err)
		}
		n, err := c.vlCount(b)
		return n, time.Since(start), err
	}
	u := p.base + c.pave(i)
	b, err := get(u)
	if err != nil {
		return 0, time.Since(start), fmt.Errorf("pave %s: %w", c.name, err)
	}
	n, err := c.paveCount(b)
	return n, time.Since(start), err
}

func get(u string) ([]byte, error) {
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return b, err
}

// evictPageCache drops the page cache of every file under dirs
// (POSIX_FADV_DONTNEED after a sync), so the next read comes from disk:
// "cold" without restarting the machine or touching other processes' cache.
func evictPageCache(dirs ...string) {
	syscall.Sync()
	for _, d := range dirs {
		filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return nil
			}
			f, err := os.Open(p)
			if err != nil {
				return nil
			}
			unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
			f.Close()
			return nil
		})
	}
}

// ---- the blob store: SeaweedFS behind a proxy adding latency ----

const (
	s3Key, s3Secret, s3Bucket = "pave-bench", "pave-bench-secret", "pave-bench"
)

type seaweed struct {
	cmd      *exec.Cmd
	dir      string
	endpoint string // the proxy's address
	proxy    net.Listener
}

// startSeaweed runs SeaweedFS's S3 server on loopback and a TCP proxy in
// front of it that holds every chunk a client sends for delay, so each
// S3 request takes that much longer, like a store in another building.
func startSeaweed(bin string, delay time.Duration) (*seaweed, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("SeaweedFS's weed is missing at %s: run scripts/deps.sh, which builds it", bin)
	}
	dir, err := os.MkdirTemp("", "pave-bench-seaweed-")
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`{"identities":[{"name":"pave","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Admin","Read","Write","List","Tagging"]}]}`, s3Key, s3Secret)
	if err := os.WriteFile(filepath.Join(dir, "s3.json"), []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	os.Mkdir(filepath.Join(dir, "data"), 0o700)
	names := []string{"master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
		"s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance"}
	args := []string{"server", "-dir=" + filepath.Join(dir, "data"), "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-s3", "-s3.config=" + filepath.Join(dir, "s3.json"), "-master.volumeSizeLimitMB=64", "-volume.max=32"}
	var s3Addr string
	for _, n := range names {
		addr := freePort()
		_, port, _ := net.SplitHostPort(addr)
		args = append(args, fmt.Sprintf("-%s=%s", n, port))
		if n == "s3.port" {
			s3Addr = addr
		}
	}
	logf, err := os.Create(filepath.Join(dir, "weed.log"))
	if err != nil {
		return nil, err
	}
	// On the harness's core (-s3-core), not on the servers': the CPU an S3
	// service spends on a GET is not spent on the machine of the store
	// that sent it, and on the servers' core SeaweedFS's 0.6–0.7 ms per GET
	// (its gateway, filer lookup and volume read) was charged to Pave's
	// query: 13 ms for the 20 GETs of a rare phrase at 2 M lines, half of
	// what the query took beyond the 20 ms round trip. -s3-core 1 puts it
	// back beside the servers, as before session 11.
	cmd := pinned(s3Core, bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sw := &seaweed{cmd: cmd, dir: dir}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		sw.stop()
		return nil, err
	}
	sw.proxy, sw.endpoint = ln, ln.Addr().String()
	go delayProxy(ln, s3Addr, delay)
	// Ready when the bucket exists: create it through the S3 API.
	deadline := time.Now().Add(120 * time.Second)
	for {
		if err := makeBucket(s3Addr); err == nil {
			return sw, nil
		} else if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "weed.log"))
			sw.stop()
			return nil, fmt.Errorf("SeaweedFS did not serve S3 within 120s: %v\n%s", err, tailOf(string(b), 1500))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func (sw *seaweed) stop() {
	if sw.proxy != nil {
		sw.proxy.Close()
	}
	sw.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { sw.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		sw.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(sw.dir)
}

// setting is the cold store setting for Pave; the keys go in the environment.
func (sw *seaweed) setting() string {
	os.Setenv("AWS_ACCESS_KEY_ID", s3Key)
	os.Setenv("AWS_SECRET_ACCESS_KEY", s3Secret)
	return "s3://" + s3Bucket + "/cold?endpoint=" + sw.endpoint + "&insecure=1"
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// delayProxy forwards connections to upstream, holding each chunk the
// client sends for delay before passing it on, and a new connection's
// first chunk for one delay more: a connection costs a round trip (the
// TCP handshake; over TLS to a real S3 it would cost two or three).
func delayProxy(ln net.Listener, upstream string, delay time.Duration) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				return
			}
			go func() { io.Copy(c, u); c.Close() }()
			time.Sleep(delay) // the handshake's round trip
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					time.Sleep(delay)
					if _, werr := u.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			u.Close()
		}()
	}
}

func s3Client(addr string) (*minio.Client, error) {
	return minio.New(addr, &minio.Options{Creds: credentials.NewStaticV4(s3Key, s3Secret, "")})
}

func makeBucket(addr string) error {
	c, err := s3Client(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = c.MakeBucket(ctx, s3Bucket, minio.MakeBucketOptions{})
	if code := minio.ToErrorResponse(err).Code; err != nil && code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
		return err
	}
	return nil
}

// bytes is the size of the objects Pave keeps in the bucket.
func (sw *seaweed) bytes() int64 {
	c, err := s3Client(sw.endpoint)
	if err != nil {
		return 0
	}
	var n int64
	for o := range c.ListObjects(context.Background(), s3Bucket, minio.ListObjectsOptions{Recursive: true}) {
		n += o.Size
	}
	return n
}
