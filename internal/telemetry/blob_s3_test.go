package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
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

var testBuckets atomic.Int64

// newTestS3Blob serves an S3 API in-process and connects an S3Blob to a
// fresh bucket of it through minio-go, over real HTTP.
//
// The server is gofakes3, a fake, because no real S3-compatible server
// could be had on this machine: versitygw (Apache-2.0) is refused by the Go
// module proxy, SeaweedFS (Apache-2.0) cannot be `go install`ed (its go.mod
// has replace directives) and pulls about 490 modules to build, and MinIO's
// server is AGPL. The S3Blob code path (minio-go's signing, PUT, GET, ranged
// listing with a prefix, DELETE, error mapping) is the production one.
func newTestS3Blob(t *testing.T, prefix string) *S3Blob {
	t.Helper()
	backend := s3mem.New()
	srv := httptest.NewServer(gofakes3.New(backend, gofakes3.WithAutoBucket(false)).Server())
	t.Cleanup(srv.Close)
	bucket := fmt.Sprintf("pave-test-%d", testBuckets.Add(1))
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "pave-test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "pave-test-secret")
	spec := fmt.Sprintf("s3://%s/%s?endpoint=%s&insecure=1&region=us-east-1", bucket, prefix, u.Host)
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
	// A second S3Blob on the same bucket under another prefix.
	b := &S3Blob{client: a.client, bucket: a.bucket, prefix: "site-b/", where: "test"}
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

func TestNewS3BlobReportsAMissingBucketAndAnUnreachableStore(t *testing.T) {
	backend := s3mem.New()
	srv := httptest.NewServer(gofakes3.New(backend, gofakes3.WithAutoBucket(false)).Server())
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	ctx := context.Background()
	_, err := NewS3Blob(ctx, S3Options{Endpoint: u.Host, Insecure: true, Bucket: "absent"})
	if err == nil || !strings.Contains(err.Error(), `bucket "absent" does not exist`) {
		t.Fatalf("missing bucket: %v", err)
	}
	srv.Close()
	_, err = NewS3Blob(ctx, S3Options{Endpoint: u.Host, Insecure: true, Bucket: "b"})
	if err == nil || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
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
