package vlstore

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/pave-platform/pave/internal/telemetry"
)

// The group commit of write.go: one goroutine takes every batch inserted
// since its last round, makes them searchable with one force_flush, counts
// them with one query, and hands the group to a waiter that counts them
// again after the flush window. Rounds follow each other while earlier
// groups are still in their window.

type pendingBatch struct {
	id       string
	n        int
	from, to time.Time
	done     chan error
}

type committer struct {
	s     *Store
	mu    sync.Mutex
	queue []pendingBatch
	kick  chan struct{}
	quit  chan struct{}
	wg    sync.WaitGroup
}

func newCommitter(s *Store) *committer {
	c := &committer{s: s, kick: make(chan struct{}, 1), quit: make(chan struct{})}
	c.wg.Add(1)
	go c.loop()
	return c
}

var errClosed = errors.New("the VictoriaLogs store is closed")

func (c *committer) stop() {
	select {
	case <-c.quit:
	default:
		close(c.quit)
	}
	c.wg.Wait()
}

// wait queues b and returns once it is acknowledged or has failed.
func (c *committer) wait(ctx context.Context, b pendingBatch) error {
	b.done = make(chan error, 1)
	c.mu.Lock()
	c.queue = append(c.queue, b)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	select {
	case err := <-b.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: VictoriaLogs did not confirm the records in time: %v", telemetry.ErrUnavailable, ctx.Err())
	case <-c.quit:
		return fmt.Errorf("%w: %v", telemetry.ErrUnavailable, errClosed)
	}
}

func (c *committer) loop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.quit:
			c.fail(errClosed)
			return
		case <-c.kick:
		}
		c.mu.Lock()
		group := c.queue
		c.queue = nil
		c.mu.Unlock()
		if len(group) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.s.o.AckTimeout)
		group, err := c.searchable(ctx, group)
		if err != nil || c.s.o.FlushInterval < 0 || len(group) == 0 {
			cancel()
			reply(group, err)
			continue
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer cancel()
			t := time.NewTimer(2*c.s.o.FlushInterval + time.Second)
			defer t.Stop()
			select {
			case <-t.C:
			case <-c.quit:
				reply(group, errClosed)
				return
			}
			_, missing, err := c.count(ctx, group)
			if err == nil && len(missing) > 0 {
				err = fmt.Errorf("VictoriaLogs lost records after it had them (a storage node restarted?): %s", missing[0])
			}
			reply(group, err)
		}()
	}
}

func (c *committer) fail(err error) {
	c.mu.Lock()
	group := c.queue
	c.queue = nil
	c.mu.Unlock()
	reply(group, fmt.Errorf("%w: %v", telemetry.ErrUnavailable, err))
}

func reply(group []pendingBatch, err error) {
	if err != nil && !errors.Is(err, telemetry.ErrUnavailable) {
		err = fmt.Errorf("%w: %v", telemetry.ErrUnavailable, err)
	}
	for _, b := range group {
		b.done <- err
	}
}

// searchable flushes the nodes' buffers until every record of the group
// is found, then returns the group; a batch still incomplete after half
// the acknowledgement timeout fails alone (VictoriaLogs drops a line it
// refuses, e.g. one longer than -insert.maxLineSizeBytes or outside its
// retention, with only a warning in its own log).
func (c *committer) searchable(ctx context.Context, group []pendingBatch) ([]pendingBatch, error) {
	deadline := time.Now().Add(c.s.o.AckTimeout / 2)
	var last error
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		if err := c.forceFlush(ctx); err != nil {
			last = err
		} else {
			found, missing, err := c.count(ctx, group)
			if err == nil && len(missing) == 0 {
				return group, nil
			}
			last = err
			if err == nil {
				last = errors.New(missing[0])
				if time.Now().After(deadline) {
					var ok []pendingBatch
					for _, b := range group {
						if found[b.id] == b.n {
							ok = append(ok, b)
						} else {
							b.done <- fmt.Errorf("%w: VictoriaLogs did not store every record (a line over its -insert.maxLineSizeBytes, or outside its -retentionPeriod?): batch %s: %d of %d records found",
								telemetry.ErrUnavailable, b.id, found[b.id], b.n)
						}
					}
					return ok, nil
				}
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return group, fmt.Errorf("VictoriaLogs did not confirm the records within %s: %v", c.s.o.AckTimeout, last)
		case <-c.quit:
			t.Stop()
			return group, errClosed
		case <-t.C:
		}
	}
}

// forceFlush asks every node to make what it buffers searchable; on a
// vlinsert node that sends its buffers to the storage nodes and flushes
// them there.
func (c *committer) forceFlush(ctx context.Context) error {
	var errs []error
	for _, a := range c.s.o.Addrs {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a+"/internal/force_flush", nil)
		if err != nil {
			return err
		}
		resp, err := c.s.o.Client.Do(req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			errs = append(errs, fmt.Errorf("%s/internal/force_flush: %s", a, resp.Status))
		}
	}
	if len(errs) == len(c.s.o.Addrs) {
		return errors.Join(errs...)
	}
	return nil
}

// count returns a description of each batch of the group not wholly found.
// A partial answer (a storage node down) is fine: a batch counts as
// stored only when every one of its records is found on the nodes that
// answer.
func (c *committer) count(ctx context.Context, group []pendingBatch) (map[string]int, []string, error) {
	ids := make([]string, len(group))
	from, to := group[0].from, group[0].to
	for i, b := range group {
		ids[i] = b.id
		from, to = minTime(from, b.from), maxTime(to, b.to)
	}
	found := map[string]int{}
	err := c.s.selectRows(ctx, ackQuery(ids, from, to), true, func(row map[string]string) error {
		n, _ := strconv.Atoi(row["pave_n"])
		found[row[fieldBatch]] = n
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	var missing []string
	for _, b := range group {
		if found[b.id] != b.n {
			missing = append(missing, fmt.Sprintf("batch %s: %d of %d records found", b.id, found[b.id], b.n))
		}
	}
	return found, missing, nil
}
