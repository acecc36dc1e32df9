package telemetry

import (
	"context"
	"errors"
)

// Blob is where sealed partitions of the cold tier go: a directory by
// default (DirBlob), any S3-compatible store in production. Keys are
// slash-separated ("20260102T150000Z/000123-0000-logs.blk"). Put must be
// atomic: a reader sees the whole object or none.
type Blob interface {
	Put(ctx context.Context, key string, data []byte) error
	Get(ctx context.Context, key string) ([]byte, error)
	List(ctx context.Context, prefix string) ([]string, error)
	Delete(ctx context.Context, key string) error
}

// ErrBlobNotFound is returned by Get for a missing key.
var ErrBlobNotFound = errors.New("blob not found")
