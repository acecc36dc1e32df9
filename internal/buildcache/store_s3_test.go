package buildcache

import (
	"bytes"
	"context"
	"fmt"
	"github.com/pave-platform/pave/internal/buildcache/tier"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// startSeaweedFS runs a real S3-compatible server (SeaweedFS's weed, which
// scripts/deps.sh builds into ~/.cache/pave-tools/bin) with one bucket, as
// the telemetry store's tests do.
func startSeaweedFS(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("weed")
	if err != nil {
		bin = filepath.Join(os.Getenv("HOME"), ".cache", "pave-tools", "bin", "weed")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the S3 tier test needs SeaweedFS's weed at %s: run scripts/deps.sh", bin)
	}
	dir := t.TempDir()
	const key, secret = "pave-test", "pave-test-secret"
	cfg := fmt.Sprintf(`{"identities":[{"name":"pave","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Admin","Read","Write","List","Tagging"]}]}`, key, secret)
	os.WriteFile(filepath.Join(dir, "s3.json"), []byte(cfg), 0o600)
	os.Mkdir(filepath.Join(dir, "data"), 0o700)
	names := []string{"master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
		"s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance"}
	args := []string{"server", "-dir=" + filepath.Join(dir, "data"), "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-s3", "-s3.config=" + filepath.Join(dir, "s3.json"), "-master.volumeSizeLimitMB=64", "-volume.max=8"}
	var ports []int
	var ls []net.Listener
	for range names {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for i, n := range names {
		ls[i].Close()
		args = append(args, fmt.Sprintf("-%s=%d", n, ports[i]))
	}
	log, _ := os.Create(filepath.Join(dir, "weed.log"))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	endpoint := fmt.Sprintf("127.0.0.1:%d", ports[6])
	c, _ := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4(key, secret, "")})
	t.Setenv("AWS_ACCESS_KEY_ID", key)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	for deadline := time.Now().Add(120 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := c.MakeBucket(ctx, "buildcache", minio.MakeBucketOptions{})
		cancel()
		if err == nil {
			return endpoint
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "weed.log"))
			t.Fatalf("SeaweedFS did not serve S3 within 120s: %v\n%s", err, b[max(0, len(b)-2000):])
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// Two cache servers share one bucket: what one stores the other serves,
// and a blob altered in the bucket is refused, not served.
func TestSharedS3TierBetweenTwoServers(t *testing.T) {
	endpoint := startSeaweedFS(t)
	spec := "s3://buildcache/ci?endpoint=" + endpoint + "&insecure=1"
	open := func() (*Store, *httptest.Server) {
		blob, err := OpenBlob(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		disk, _ := tier.OpenDisk(t.TempDir(), tier.DiskOptions{MaxBytes: 1 << 20, Sync: true})
		st := &Store{Disk: disk, Blob: blob}
		ts := httptest.NewServer(NewServer(st, nil))
		t.Cleanup(ts.Close)
		return st, ts
	}
	_, a := open()
	bStore, b := open()

	out := []byte("a compiled package")
	action := strings.Repeat("e", 64)
	if code, msg := do(t, "PUT", a.URL+"/go/"+action, "", out, tier.GoOutputHeader, sum(out)); code != 200 {
		t.Fatalf("PUT on server A: %d %s", code, msg)
	}
	if code, got := do(t, "GET", b.URL+"/go/"+action, "", nil); code != 200 || got != string(out) {
		t.Fatalf("server B through the bucket: %d %q", code, got)
	}
	if !bStore.Disk.Has(tier.CAS, sum(out), int64(len(out))) {
		t.Fatal("server B did not keep the blob on its disk tier")
	}

	// Someone writes other bytes under a CAS key in the bucket.
	forged := []byte("not what the key says")
	key := sum([]byte("honest"))
	if err := bStore.Blob.Put(context.Background(), "cas/"+key, forged); err != nil {
		t.Fatal(err)
	}
	code, msg := do(t, "GET", b.URL+"/cas/"+key, "", nil)
	if code == 200 || strings.Contains(msg, string(forged)) || !strings.Contains(msg, "does not match") {
		t.Fatalf("a forged blob in the bucket: %d %q", code, msg)
	}
	if _, err := OpenBlob(context.Background(), "s3://missing-bucket/x?endpoint="+endpoint+"&insecure=1"); err == nil || !bytes.Contains([]byte(err.Error()), []byte("does not exist")) {
		t.Fatalf("a missing bucket: %v", err)
	}
}
