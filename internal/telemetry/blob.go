package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Blob is where sealed partitions of the cold tier go: a directory by
// default (DirBlob), any S3-compatible store in production. Keys are
// slash-separated ("20260102T150000Z/000123-0000-logs.blk"). Put must be
// atomic: a reader sees the whole object or none.
type Blob interface {
	Put(ctx context.Context, key string, data []byte) error
	Get(ctx context.Context, key string) ([]byte, error)
	// GetRange returns the n bytes of key from off (an S3 ranged GET): a
	// query reads the row groups it needs, not the whole block. Fewer
	// than n bytes is an error.
	GetRange(ctx context.Context, key string, off, n int64) ([]byte, error)
	List(ctx context.Context, prefix string) ([]string, error)
	Delete(ctx context.Context, key string) error
}

// ErrBlobNotFound is returned by Get for a missing key.
var ErrBlobNotFound = errors.New("blob not found")

// checkBlobKey keeps every provider's keys inside its root (a directory or
// a bucket prefix): keys come from partition and block names, but a
// damaged manifest must not be able to reach outside.
func checkBlobKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") {
		return fmt.Errorf("blob key %q: must be a relative slash-separated path", key)
	}
	for _, part := range strings.Split(key, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("blob key %q: empty, . or .. path elements are not allowed", key)
		}
	}
	return nil
}
