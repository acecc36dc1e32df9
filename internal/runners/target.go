package runners

import "context"

// Target runs a pool's runners somewhere. One file per kind of target.
type Target interface {
	// Scale brings the pool to n runners and returns how many it has;
	// an error means the target could not be reached or changed.
	Scale(ctx context.Context, n int) (int, error)
	// Close stops what the target started on this machine, if anything.
	Close() error
}
