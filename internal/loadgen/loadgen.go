// Package loadgen sends HTTP requests at a fixed rate (open loop: a slow
// answer does not slow the sending), as users would, and counts what
// failed. The demo and the failover benchmark share it.
package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options describe the load.
type Options struct {
	// Addr is the gateway's host:port; Host the Host header
	// (SERVICE.localhost).
	Addr, Host string
	Rate       int // requests per second
	// InFlight bounds concurrent requests (default 128); when reached,
	// sending waits, and the wait is counted as Late.
	InFlight int
	// Request builds request i; default GET /.
	Request func(ctx context.Context, i uint64, base string) *http.Request
	Timeout time.Duration // per request, default 5s
}

// Counts are what a run did so far.
type Counts struct {
	Sent, Failed, Late uint64
	// Unretriable are the failures (counted in Failed too) no gateway may
	// retry: a request whose method is not idempotent (POST, PATCH)
	// answered by a Pave gateway's 5xx marked upstream (X-Pave-Gateway-
	// Error), i.e. an instance may have received it before it failed, as
	// one killed with its cluster. Only its client, knowing whether that
	// is safe, may send it again. A failover drill reports them apart
	// from the failures the platform could have avoided.
	Unretriable uint64
	// ByHeader counts answers by the value of the X-Pave-Cluster header,
	// or X-Pave-Version when there is none.
	ByHeader map[string]uint64
}

// Gen is a running load.
type Gen struct {
	o      Options
	client *http.Client
	sent   atomic.Uint64
	failed atomic.Uint64
	unretr atomic.Uint64
	late   atomic.Uint64
	mu     sync.Mutex
	by     map[string]uint64
	onFail func(error)
}

// New returns a generator; Run starts it.
func New(o Options) *Gen {
	if o.InFlight == 0 {
		o.InFlight = 128
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Request == nil {
		o.Request = func(ctx context.Context, _ uint64, base string) *http.Request {
			r, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/", nil)
			return r
		}
	}
	return &Gen{o: o, by: map[string]uint64{},
		client: &http.Client{Timeout: o.Timeout, Transport: &http.Transport{MaxIdleConnsPerHost: o.InFlight, MaxIdleConns: o.InFlight}}}
}

// OnFailure sets a function called with each failure (for logs).
func (g *Gen) OnFailure(f func(error)) { g.onFail = f }

// Run sends until ctx ends, then waits for the requests in flight.
func (g *Gen) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second / time.Duration(g.o.Rate))
	defer tick.Stop()
	sem := make(chan struct{}, g.o.InFlight)
	defer func() {
		for range cap(sem) {
			sem <- struct{}{}
		}
	}()
	base := "http://" + g.o.Addr
	var n uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n++
		select {
		case sem <- struct{}{}:
		default:
			g.late.Add(1)
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
		i := n
		go func() {
			defer func() { <-sem }()
			// Requests in flight when ctx ends finish on their own time:
			// cutting them would count the harness's stop as a failure.
			req := g.o.Request(context.WithoutCancel(ctx), i, base)
			req.Host = g.o.Host
			g.sent.Add(1)
			resp, err := g.client.Do(req)
			unretriable := false
			if err == nil {
				var body []byte
				if resp.StatusCode >= 500 {
					body, err = io.ReadAll(io.LimitReader(resp.Body, 4<<10))
				} else {
					_, err = io.Copy(io.Discard, resp.Body)
				}
				resp.Body.Close()
				if err == nil && resp.StatusCode >= 500 {
					mark := resp.Header.Get("X-Pave-Gateway-Error")
					unretriable = mark == "upstream" && !idempotent(req.Method)
					err = fmt.Errorf("%s %s: %s%s: %s", req.Method, req.URL.Path, resp.Status, describe(resp.Header.Get("X-Pave-Cluster"), mark),
						firstLine(body))
				}
				key := resp.Header.Get("X-Pave-Cluster")
				if key == "" {
					key = resp.Header.Get("X-Pave-Version")
				}
				g.mu.Lock()
				g.by[key]++
				g.mu.Unlock()
			}
			if err != nil {
				g.failed.Add(1)
				if unretriable {
					g.unretr.Add(1)
				}
				if g.onFail != nil {
					g.onFail(err)
				}
			}
		}()
	}
}

// Counts returns the counts so far.
func (g *Gen) Counts() Counts {
	g.mu.Lock()
	by := make(map[string]uint64, len(g.by))
	for k, v := range g.by {
		by[k] = v
	}
	g.mu.Unlock()
	// Unretriable first: a failure counts in failed before unretr, so
	// Unretriable never exceeds Failed.
	unretr := g.unretr.Load()
	return Counts{Sent: g.sent.Load(), Failed: g.failed.Load(), Unretriable: unretr, Late: g.late.Load(), ByHeader: by}
}

// Retriable are the failures some gateway could have retried: Failed
// less Unretriable.
func (c Counts) Retriable() uint64 { return c.Failed - c.Unretriable }

// idempotent is RFC 9110's list: methods a gateway may repeat.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	return false
}

// describe names who made a failed answer: the cluster that answered and
// the gateway's mark, when there are.
func describe(cluster, mark string) string {
	var parts []string
	if cluster != "" {
		parts = append(parts, "cluster "+cluster)
	}
	if mark != "" {
		parts = append(parts, "gateway error "+mark)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// firstLine is the start of an answer's body, for a failure's message.
func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// Sub returns c minus an earlier count.
func (c Counts) Sub(o Counts) Counts {
	out := Counts{Sent: c.Sent - o.Sent, Failed: c.Failed - o.Failed, Unretriable: c.Unretriable - o.Unretriable, Late: c.Late - o.Late, ByHeader: map[string]uint64{}}
	for k, v := range c.ByHeader {
		if d := v - o.ByHeader[k]; d > 0 {
			out.ByHeader[k] = d
		}
	}
	return out
}

// HelloMix is the demo's mix against examples/hello: 90% GET
// /v1/hello/{name}, 10% POST /v1/pay, with merchant ids.
func HelloMix(ctx context.Context, i uint64, base string) *http.Request {
	var req *http.Request
	if i%10 == 0 {
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/pay", strings.NewReader(`{"amount":1200}`))
	} else {
		req, _ = http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/v1/hello/user%d", base, i%500), nil)
	}
	req.Header.Set("X-Merchant-Id", fmt.Sprintf("m-%d", i%37))
	return req
}
