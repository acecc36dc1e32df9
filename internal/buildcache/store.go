package buildcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/pave-platform/pave/internal/buildcache/tier"
	"io"
	"os"

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
// optional shared Blob  Reads fill the disk from the blob; writes go
// to both before they are acknowledged.
type Store struct {
	Disk *tier.Disk
	Blob Blob // nil: disk only
}

// Open returns the entry's content and size from the nearest
func (s *Store) Open(ctx context.Context, kind tier.Kind, key string) (io.ReadCloser, int64, error) {
	f, n, err := s.Disk.Open(kind, key)
	if err == nil || !errors.Is(err, tier.ErrNotFound) || s.Blob == nil {
		return f, n, err
	}
	data, err := s.Blob.Get(ctx, string(kind)+"/"+key)
	if err != nil {
		if errors.Is(err, telemetry.ErrBlobNotFound) {
			return nil, 0, tier.ErrNotFound
		}
		return nil, 0, err
	}
	// Verified again on the way in: a CAS object must still hash to its key.
	if err := s.Disk.Put(kind, key, bytes.NewReader(data), int64(len(data))); err != nil {
		return nil, 0, fmt.Errorf("shared tier %s/%s: %w", kind, key, err)
	}
	return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
}

// Put stores the entry in every
func (s *Store) Put(ctx context.Context, kind tier.Kind, key string, r io.Reader, size int64) error {
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
