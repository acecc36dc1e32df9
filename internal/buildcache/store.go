package buildcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pave-platform/pave/internal/telemetry"
)

// Blob is the shared tier: the telemetry store's blob seam (a directory or
// an S3-compatible bucket through minio-go), so several cache servers can
// share one bucket. Only the two methods the cache needs are named here.
type Blob interface {
	Put(ctx context.Context, key string, data []byte) error
	Get(ctx context.Context, key string) ([]byte, error)
}

// OpenBlob opens a shared tier from the same setting syntax as
// telemetry-cold-store: dir:/absolute/path or
// s3://bucket/prefix?endpoint=host:port&insecure=1 (credentials from the
// AWS environment variables).
func OpenBlob(ctx context.Context, spec string) (Blob, error) {
	cs, err := telemetry.ParseColdStore(spec)
	if err != nil {
		return nil, fmt.Errorf("cache shared store %q: %w", spec, err)
	}
	switch {
	case cs.S3 != nil:
		return telemetry.NewS3Blob(ctx, *cs.S3)
	case cs.Dir != "":
		return telemetry.DirBlob{Root: cs.Dir}, nil
	}
	return nil, fmt.Errorf("cache shared store %q: want dir:/absolute/path or s3://bucket/prefix?endpoint=host:port", spec)
}

// Store is the server's storage: the local disk tier, in front of an
// optional shared Blob tier. Reads fill the disk from the blob; writes go
// to both before they are acknowledged.
type Store struct {
	Disk *Disk
	Blob Blob // nil: disk only
}

// Open returns the entry's content and size from the nearest tier.
func (s *Store) Open(ctx context.Context, kind Kind, key string) (io.ReadCloser, int64, error) {
	f, n, err := s.Disk.Open(kind, key)
	if err == nil || !errors.Is(err, ErrNotFound) || s.Blob == nil {
		return f, n, err
	}
	data, err := s.Blob.Get(ctx, string(kind)+"/"+key)
	if err != nil {
		if errors.Is(err, telemetry.ErrBlobNotFound) {
			return nil, 0, ErrNotFound
		}
		return nil, 0, err
	}
	// Verified again on the way in: a CAS object must still hash to its key.
	if err := s.Disk.Put(kind, key, bytes.NewReader(data), int64(len(data))); err != nil {
		return nil, 0, fmt.Errorf("shared tier %s/%s: %w", kind, key, err)
	}
	return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
}

// Put stores the entry in every tier.
func (s *Store) Put(ctx context.Context, kind Kind, key string, r io.Reader, size int64) error {
	if err := s.Disk.Put(kind, key, r, size); err != nil {
		return err
	}
	if s.Blob == nil {
		return nil
	}
	data, err := os.ReadFile(s.Disk.Path(kind, key))
	if err != nil {
		return err
	}
	return s.Blob.Put(ctx, string(kind)+"/"+key, data)
}

// A Go entry is the action result the go command keeps under an ActionID:
// the OutputID (the SHA-256 of the output, itself in the CAS), its size and
// when it was stored. It is a line of text so that bazel-remote clients
// reading /ac see something printable.
type goEntry struct {
	OutputID string
	Size     int64
	Time     time.Time
}

func (e goEntry) encode() []byte {
	return fmt.Appendf(nil, "go1 %s %d %d\n", e.OutputID, e.Size, e.Time.UnixNano())
}

func parseGoEntry(b []byte) (goEntry, error) {
	f := strings.Fields(string(b))
	if len(f) != 4 || f[0] != "go1" {
		return goEntry{}, fmt.Errorf("not a Go action entry (want \"go1 OUTPUTID SIZE TIME\")")
	}
	if err := CheckKey(f[1]); err != nil {
		return goEntry{}, err
	}
	size, err1 := strconv.ParseInt(f[2], 10, 64)
	nanos, err2 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil || size < 0 {
		return goEntry{}, fmt.Errorf("Go action entry %q: bad size or time", b)
	}
	return goEntry{OutputID: f[1], Size: size, Time: time.Unix(0, nanos)}, nil
}
