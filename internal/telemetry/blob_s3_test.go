package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

type blobProvider struct {
	name string
	open func(t *testing.T) Blob
}

// blobProviders are the cold-tier providers every cold-tier test runs
// against.
func blobProviders() []blobProvider {
	return []blobProvider{
		{"dir", func(t *testing.T) Blob { return DirBlob{Root: t.TempDir()} }},
		{"s3", func(t *testing.T) Blob { return newTestS3Blob(t, "pave/cold") }},
	}
}

var testPrefixes atomic.Int64

// seaweedFS is one real S3-compatible server (SeaweedFS, Apache-2.0) shared
// by the package's tests, with signature checking on: requests signed with
// another secret are refused.
var seaweedFS struct {
	once     sync.Once
	cmd      *exec.Cmd
	dir      string
	endpoint string
	err      error
}

const (
	testS3Key    = "pave-test"
	testS3Secret = "pave-test-secret"
	testS3Bucket = "pave-test"
)

// seaweedBinary is where scripts/test.sh installs SeaweedFS's weed:
// $PAVE_TOOLS/bin (default ~/.cache/pave-tools/bin), which it also puts
// on PATH.
func seaweedBinary() string {
	if p, err := exec.LookPath("weed"); err == nil {
		return p
	}
	dir := os.Getenv("PAVE_TOOLS")
	if dir == "" {
		dir = filepath.Join(os.Getenv("HOME"), ".cache", "pave-tools")
	}
	return filepath.Join(dir, "bin", "weed")
}

func startSeaweedFS(t *testing.T) string {
	t.Helper()
	seaweedFS.once.Do(func() { seaweedFS.endpoint, seaweedFS.err = launchSeaweedFS() })
	if seaweedFS.err != nil {
		t.Fatal(seaweedFS.err)
	}
	return seaweedFS.endpoint
}

func launchSeaweedFS() (string, error) {
	bin := seaweedBinary()
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("the S3 tests need SeaweedFS's weed at %s (a real S3-compatible server). Install it with:\n"+
			"  go mod download -json github.com/seaweedfs/seaweedfs@%s  # then, in a writable copy of that module directory:\n"+
			"  go build -o %s ./weed\n(go install refuses the module because its go.mod has replace directives)", bin, seaweedVersion, bin)
	}
	dir, err := os.MkdirTemp("", "pave-seaweedfs-")
	if err != nil {
		return "", err
	}
	seaweedFS.dir = dir
	cfg := fmt.Sprintf(`{"identities":[{"name":"pave","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Admin","Read","Write","List","Tagging"]}]}`, testS3Key, testS3Secret)
	if err := os.WriteFile(filepath.Join(dir, "s3.json"), []byte(cfg), 0o600); err != nil {
		return "", err
	}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		return "", err
	}
	// Every listener gets a free loopback port, so parallel test runs and
	// other services on the machine never collide.
	names := []string{"master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
		"s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance"}
	ports, err := freePorts(len(names))
	if err != nil {
		return "", err
	}
	args := []string{"server", "-dir=" + filepath.Join(dir, "data"), "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-s3", "-s3.config=" + filepath.Join(dir, "s3.json"), "-master.volumeSizeLimitMB=64", "-volume.max=32"}
	for i, n := range names {
		args = append(args, fmt.Sprintf("-%s=%d", n, ports[i]))
	}
	log, err := os.Create(filepath.Join(dir, "weed.log"))
	if err != nil {
		return "", err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start %s: %w", bin, err)
	}
	seaweedFS.cmd = cmd
	endpoint := fmt.Sprintf("127.0.0.1:%d", ports[6])
	c, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4(testS3Key, testS3Secret, "")})
	if err != nil {
		return "", err
	}
	// Ready when the bucket can be created (the filer behind the gateway
	// is up). One bucket serves every test, each under its own prefix: in
	// SeaweedFS every bucket allocates volumes of its own.
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = c.MakeBucket(ctx, testS3Bucket, minio.MakeBucketOptions{})
		cancel()
		if code := minio.ToErrorResponse(err).Code; err == nil || code == "BucketAlreadyOwnedByYou" {
			return endpoint, nil
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "weed.log"))
			return "", fmt.Errorf("SeaweedFS at %s did not serve S3 within 90s: %v\n%s", endpoint, err, tail(string(b), 2000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func stopSeaweedFS() {
	if seaweedFS.cmd != nil {
		seaweedFS.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { seaweedFS.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			seaweedFS.cmd.Process.Kill()
			<-done
		}
	}
	if seaweedFS.dir != "" {
		os.RemoveAll(seaweedFS.dir)
	}
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// The SeaweedFS release the tests were written against.
const seaweedVersion = "v0.0.0-20261109003541-7506e5f91cd6"

// newTestS3Blob connects an S3Blob, through the setting's parser, to a
// fresh bucket of the real server.
func newTestS3Blob(t *testing.T, prefix string) *S3Blob {
	t.Helper()
	endpoint := startSeaweedFS(t)
	prefix = fmt.Sprintf("run%d-%d/%s", os.Getpid(), testPrefixes.Add(1), prefix)
	t.Setenv("AWS_ACCESS_KEY_ID", testS3Key)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testS3Secret)
	spec := fmt.Sprintf("s3://%s/%s?endpoint=%s&insecure=1", testS3Bucket, prefix, endpoint)
	b, err := OpenColdStore(context.Background(), spec)
	if err != nil {
		t.Fatalf("OpenColdStore(%s): %v", spec, err)
	}
	return b.(*S3Blob)
}

func TestBlobProvidersContract(t *testing.T) {
	for _, p := range blobProviders() {
		t.Run(p.name, func(t *testing.T) {
			ctx := context.Background()
			b := p.open(t)
			for _, k := range []string{"../x", "/etc/passwd", "a/../../b", "a//b", "", `a\b`} {
				if err := b.Put(ctx, k, []byte("x")); err == nil {
					t.Errorf("Put(%q) accepted", k)
				}
				if _, err := b.Get(ctx, k); err == nil || errors.Is(err, ErrBlobNotFound) {
					t.Errorf("Get(%q): %v, want a key error", k, err)
				}
			}
			if _, err := b.Get(ctx, "nope/x"); !errors.Is(err, ErrBlobNotFound) {
				t.Errorf("Get of a missing key: %v", err)
			}
			for _, k := range []string{"p1/a.blk", "p1/MANIFEST.json", "p2/b.blk"} {
				if err := b.Put(ctx, k, []byte("data of "+k)); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Put(ctx, "p1/a.blk", []byte("replaced")); err != nil {
				t.Fatal(err)
			}
			if got, err := b.Get(ctx, "p1/a.blk"); err != nil || string(got) != "replaced" {
				t.Fatalf("Get after overwrite: %q %v", got, err)
			}
			all, err := b.List(ctx, "")
			sort.Strings(all)
			if want := []string{"p1/MANIFEST.json", "p1/a.blk", "p2/b.blk"}; err != nil || !reflect.DeepEqual(all, want) {
				t.Fatalf("List(\"\") = %v %v, want %v", all, err, want)
			}
			p1, err := b.List(ctx, "p1/")
			sort.Strings(p1)
			if want := []string{"p1/MANIFEST.json", "p1/a.blk"}; err != nil || !reflect.DeepEqual(p1, want) {
				t.Fatalf("List(p1/) = %v %v, want %v", p1, err, want)
			}
			if got, err := b.GetRange(ctx, "p1/a.blk", 2, 4); err != nil || string(got) != "plac" {
				t.Fatalf("GetRange(2, 4) = %q %v, want \"plac\"", got, err)
			}
			if got, err := b.GetRange(ctx, "p1/a.blk", 5, 10); err == nil {
				t.Fatalf("GetRange past the end = %q, want an error", got)
			}
			if _, err := b.GetRange(ctx, "nope/x", 0, 1); !errors.Is(err, ErrBlobNotFound) {
				t.Fatalf("GetRange of a missing key: %v", err)
			}
			if err := b.Delete(ctx, "p1/a.blk"); err != nil {
				t.Fatal(err)
			}
			if err := b.Delete(ctx, "p1/a.blk"); err != nil {
				t.Fatalf("deleting a missing key: %v", err)
			}
			if _, err := b.Get(ctx, "p1/a.blk"); !errors.Is(err, ErrBlobNotFound) {
				t.Fatalf("Get after Delete: %v", err)
			}
		})
	}
}

func TestS3BlobPrefixIsolatesInstallations(t *testing.T) {
	ctx := context.Background()
	a := newTestS3Blob(t, "site-a")
	// A second S3Blob on the same bucket under a sibling prefix.
	b := &S3Blob{client: a.client, bucket: a.bucket, prefix: strings.TrimSuffix(a.prefix, "site-a/") + "site-b/", where: "test"}
	if err := a.Put(ctx, "p/x.blk", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if keys, err := b.List(ctx, ""); err != nil || len(keys) != 0 {
		t.Fatalf("site-b sees %v %v", keys, err)
	}
	if _, err := b.Get(ctx, "p/x.blk"); !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("site-b reads site-a's key: %v", err)
	}
	if keys, err := a.List(ctx, ""); err != nil || !reflect.DeepEqual(keys, []string{"p/x.blk"}) {
		t.Fatalf("site-a lists %v %v, want the key without its prefix", keys, err)
	}
}

func TestNewS3BlobReportsAMissingBucketBadCredentialsAndAnUnreachableStore(t *testing.T) {
	endpoint := startSeaweedFS(t)
	ctx := context.Background()
	t.Setenv("AWS_ACCESS_KEY_ID", testS3Key)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testS3Secret)
	_, err := NewS3Blob(ctx, S3Options{Endpoint: endpoint, Insecure: true, Bucket: "absent"})
	if err == nil || !strings.Contains(err.Error(), `bucket "absent" does not exist`) {
		t.Fatalf("missing bucket: %v", err)
	}
	b := newTestS3Blob(t, "p")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
	_, err = NewS3Blob(ctx, S3Options{Endpoint: endpoint, Insecure: true, Bucket: b.bucket})
	if err == nil || !strings.Contains(err.Error(), "AWS_SECRET_ACCESS_KEY") {
		t.Fatalf("wrong secret: %v", err)
	}
	if strings.Contains(err.Error(), "wrong-secret") {
		t.Fatalf("the error repeats the secret: %v", err)
	}
	ports, _ := freePorts(1)
	_, err = NewS3Blob(ctx, S3Options{Endpoint: fmt.Sprintf("127.0.0.1:%d", ports[0]), Insecure: true, Bucket: "b"})
	if err == nil || !strings.Contains(err.Error(), "check the endpoint") {
		t.Fatalf("unreachable store: %v", err)
	}
}

// A cold move that fails half-way (the store goes away after some blocks)
// leaves the partition hot and complete; the next move finishes it.
func TestColdMoveSurvivesAFailingBlobStore(t *testing.T) {
	ctx := context.Background()
	fb := &failingBlob{Blob: newTestS3Blob(t, "cold"), failAfter: 1}
	now := t0.Add(3 * time.Hour)
	s := openTest(t, t.TempDir(), func(o *Options) {
		o.Blob = fb
		o.ColdAfter = time.Hour
		o.BlockRows = 100
		o.Now = func() time.Time { return now }
	})
	s.AppendLogs(ctx, genLogs(600))
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.MoveCold(ctx); err == nil {
		t.Fatal("a move with a failing blob store reported success")
	}
	if st := s.Stats(); st.ColdBlocks != 0 || st.HotBlocks == 0 {
		t.Fatalf("after a failed move: %+v, want everything hot", st)
	}
	if n := len(mustQuery(t, s, "limit=10000").Logs); n != 600 {
		t.Fatalf("after a failed move: %d lines, want 600", n)
	}
	fb.failAfter = -1
	if err := s.MoveCold(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.HotBlocks != 0 || st.ColdBlocks == 0 {
		t.Fatalf("after the retried move: %+v, want everything cold", st)
	}
	if n := len(mustQuery(t, s, "limit=10000").Logs); n != 600 {
		t.Fatalf("after the retried move: %d lines, want 600", n)
	}
}

type failingBlob struct {
	Blob
	failAfter int // Puts that succeed before the store fails; <0 never fails
}

func (f *failingBlob) Put(ctx context.Context, key string, data []byte) error {
	if f.failAfter == 0 {
		return errors.New("injected: blob store unreachable")
	}
	f.failAfter--
	return f.Blob.Put(ctx, key, data)
}

func TestRedactColdStore(t *testing.T) {
	for _, spec := range []string{"s3://AKIA:secret@logs/p", "s3://AKIA:secret@logs%zz"} {
		if r := RedactColdStore(spec); strings.Contains(r, "secret") {
			t.Errorf("RedactColdStore(%q) = %q", spec, r)
		}
	}
	if r := RedactColdStore("s3://logs/p?endpoint=h:1"); r != "s3://logs/p?endpoint=h:1" {
		t.Errorf("RedactColdStore changed a setting without a secret: %q", r)
	}
}

func TestParseColdStore(t *testing.T) {
	for spec, want := range map[string]ColdStore{
		"":                  {},
		"dir":               {},
		"dir:/mnt/archive/": {Dir: "/mnt/archive"},
		"s3://logs":         {S3: &S3Options{Bucket: "logs"}},
		"s3://logs/pave/cold/?endpoint=127.0.0.1:9000&insecure=1&region=eu-1": {S3: &S3Options{Bucket: "logs", Prefix: "pave/cold", Endpoint: "127.0.0.1:9000", Insecure: true, Region: "eu-1"}},
	} {
		got, err := ParseColdStore(spec)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseColdStore(%q) = %+v %v, want %+v", spec, got, err, want)
		}
	}
	for spec, wantErr := range map[string]string{
		"s3:/logs":                         "want dir",
		"gs://logs":                        "want dir",
		"dir:relative":                     "absolute",
		"s3://":                            "bucket is required",
		"s3://k:secret@logs":               "credentials do not belong",
		"s3://logs/a/../b":                 "prefix",
		"s3://logs?endpoint=http://h:9000": "without a scheme",
		"s3://logs?insecure=yes":           "want 1 or 0",
		"s3://logs?tls=0":                  `unknown parameter "tls"`,
		"s3://k:secret@logs%zz":            "not a valid URL",
	} {
		_, err := ParseColdStore(spec)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("ParseColdStore(%q): %v, want an error containing %q", spec, err, wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseColdStore(%q) repeats the secret: %v", spec, err)
		}
	}
}

// A query's GETs go out together; the client keeps enough connections
// between queries that a burst of them does not open new ones (over TLS to
// a real S3, each new one is a TCP and a TLS handshake more on its GET).
// Through a proxy that counts connections and holds every request 30 ms,
// so that a burst's GETs are all in flight at once, bursts of 40 ranged
// GETs after the first open (almost) no connection; with minio-go's 16
// kept, each opened 24.
func TestS3BlobKeepsItsConnectionsAcrossBursts(t *testing.T) {
	endpoint := startSeaweedFS(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var opened atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			opened.Add(1)
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", endpoint)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { io.Copy(c, u); c.Close() }()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						time.Sleep(30 * time.Millisecond)
						if _, err := u.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Setenv("AWS_ACCESS_KEY_ID", testS3Key)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testS3Secret)
	ctx := context.Background()
	prefix := fmt.Sprintf("run%d-%d/conns", os.Getpid(), testPrefixes.Add(1))
	b, err := NewS3Blob(ctx, S3Options{Endpoint: ln.Addr().String(), Bucket: testS3Bucket, Prefix: prefix, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 64<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := b.Put(ctx, "p/block.blk", data); err != nil {
		t.Fatal(err)
	}
	const burst = 40
	burstOpened := func() int64 {
		before := opened.Load()
		var wg sync.WaitGroup
		errs := make([]error, burst)
		for i := range burst {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := b.GetRange(ctx, "p/block.blk", int64(i*1000), 500)
				if err == nil && string(got) != string(data[i*1000:i*1000+500]) {
					err = fmt.Errorf("range %d: wrong bytes", i)
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		return opened.Load() - before
	}
	first := burstOpened()
	var later int64
	for range 3 {
		later += burstOpened()
	}
	t.Logf("connections opened: %d by the first burst of %d GETs, %d by the next three", first, burst, later)
	if first < 20 {
		t.Fatalf("the first burst opened only %d connections: its GETs were not in flight together, so the test shows nothing", first)
	}
	// A later burst may outgrow the first by a few; 16 kept would open
	// about 24 a burst, 72 in all.
	if later > 12 {
		t.Fatalf("bursts after the first opened %d connections: the client does not keep its connections between bursts", later)
	}
}
