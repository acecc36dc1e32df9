package state

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrFenced reports a write made under a fence that no longer holds: the
// writer's lease expired or passed to another holder. Nothing was written.
var ErrFenced = errors.New("fenced: this replica no longer holds the lease its write was made under")

// Lease is a named claim that one holder has at a time until it expires.
// Its token grows by one whenever the lease passes to a new holder, or
// back to the same one after it lapsed: a fencing token, so a write made
// in an older term can be told from one made in the current term.
type Lease struct {
	Name     string    `json:"name"`
	Holder   string    `json:"holder"`
	Note     string    `json:"note,omitempty"` // what the holder publishes about itself (its API address)
	Token    int64     `json:"token"`
	Acquired time.Time `json:"acquired"`
	Renewed  time.Time `json:"renewed"`
	Expires  time.Time `json:"expires"`
	// Now is the store's clock when the lease was read, so a reader on
	// another machine can tell whether it has expired without trusting
	// its own clock.
	Now time.Time `json:"now"`
}

// Live reports whether the lease was held when it was read.
func (l Lease) Live() bool { return l.Holder != "" && l.Expires.After(l.Now) }

// Leases is kept by both state stores, next to the objects, so a lease and
// the writes it fences are checked in one transaction.
type Leases interface {
	// TryLease acquires lease name for holder for ttl, or renews it if
	// holder has it already. It returns the lease as stored afterwards:
	// holder holds it only if Holder == holder.
	TryLease(ctx context.Context, name, holder, note string, ttl time.Duration) (Lease, error)
	// ReleaseLease gives up a lease holder holds with token; it expires
	// at once, so a standby need not wait out the ttl.
	ReleaseLease(ctx context.Context, name, holder string, token int64) error
	// GetLease reads a lease (ErrNotFound if it was never taken).
	GetLease(ctx context.Context, name string) (Lease, error)
}

// Fence names the lease a write is made under.
type Fence struct {
	Lease  string
	Holder string
	Token  int64
}

func (f Fence) String() string {
	return fmt.Sprintf("lease %s held by %s with token %d", f.Lease, f.Holder, f.Token)
}

type fenceKey struct{}

// WithFence returns a context whose writes (Put, Delete, Append) commit
// only if, in the same transaction, f's lease is still held by f's holder
// with f's token and has not expired; otherwise they fail with ErrFenced.
// The leader's loops run under such a context, so a deposed leader that
// wakes up late cannot change anything.
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// FenceFrom returns the fence ctx carries, if any.
func FenceFrom(ctx context.Context) (Fence, bool) {
	f, ok := ctx.Value(fenceKey{}).(Fence)
	return f, ok
}

func fenced(f Fence) error { return fmt.Errorf("%s: %w", f, ErrFenced) }

// Unfenced returns s with the fence dropped from its writes. A fence
// guards the store its lease lives in; a store that holds no lease (an
// embedded cluster's own store, written by the leader's release engine
// through that cluster's runtime and router) takes the leader's writes
// as they are, instead of refusing them for a lease it never had.
func Unfenced(s Store) Store { return unfenced{s} }

type unfenced struct{ Store }

// withoutFence hides any fence ctx carries (FenceFrom reports none).
func withoutFence(ctx context.Context) context.Context {
	return context.WithValue(ctx, fenceKey{}, nil)
}

func (u unfenced) Put(ctx context.Context, kind, key string, data []byte, ifVersion int64) (Object, error) {
	return u.Store.Put(withoutFence(ctx), kind, key, data, ifVersion)
}

func (u unfenced) Delete(ctx context.Context, kind, key string, ifVersion int64) error {
	return u.Store.Delete(withoutFence(ctx), kind, key, ifVersion)
}

func (u unfenced) Append(ctx context.Context, e Event) (int64, error) {
	return u.Store.Append(withoutFence(ctx), e)
}
