package gateway

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pave-platform/pave/internal/shadow"
)

// Mirroring for a release's shadow step. While a service's mirror is on,
// every serving path hands the core (mirrorFor) each request the stable
// version is about to serve; the core decides whether it is mirrored: an
// idempotent method (GET, HEAD) or a route marked safe, within the share
// asked for, with a body within the limit. A copy then goes on a bounded
// queue and the user's request goes on at once: when the queue is full
// the copy is dropped and counted, so the mirror never delays an answer.
//
// Workers send each copy, at the same moment, to the canary and twice to
// stable (two instances when there are two), as Twitter's Diffy does: the
// two stable answers show which fields are noise (see package shadow),
// and the canary's is compared with the first. Stable is asked again
// rather than reusing the user's answer so that the three answers are
// taken under the same conditions (the same moment, the same client, the
// same queueing), which a latency comparison needs. The answers go to
// the shadow recorder, never to a user; mirror traffic never counts in
// the versions' live statistics nor ejects an instance.

// Mirror configures the mirror of one service.
type Mirror struct {
	// Stable's requests are copied to Canary.
	Stable string `json:"stable"`
	Canary string `json:"canary"`
	// Share is the part of stable's mirrorable requests copied, in parts
	// per million (0: all of them).
	Share int64 `json:"share,omitempty"`
	// MaxBodyBytes bounds the request body of a mirrored request (a
	// larger one is not mirrored, and counted) and the part of each answer
	// kept for the comparison (a longer answer is compared by its SHA-256).
	// Default 1 MiB.
	MaxBodyBytes int `json:"maxBodyBytes,omitempty"`
	// Queue bounds the copies waiting for a worker (default 1024).
	Queue int `json:"queue,omitempty"`
	// Workers send copies concurrently (default 8).
	Workers  int             `json:"workers,omitempty"`
	Settings shadow.Settings `json:"settings"`
}

const (
	defaultMirrorBody    = 1 << 20
	defaultMirrorQueue   = 1024
	defaultMirrorWorkers = 8
)

// mirrorer is one service's running mirror.
type mirrorer struct {
	g       *Gateway
	service string
	cfg     Mirror
	rec     *shadow.Recorder
	queue   chan *mirrorJob
	seq     atomic.Uint64
	stop    chan struct{}
	wg      sync.WaitGroup
	opts    shadow.Options
}

type mirrorJob struct {
	method, route, path string
	trace               string
	raw                 []byte // the request as HTTP/1.1
}

// SetMirror turns the mirror of a service on (m non-nil) or off. Turning
// it on again with the same versions keeps the counts; other versions
// start new ones. Invalid settings are refused and nothing changes.
func (g *Gateway) SetMirror(service string, m *Mirror) error {
	if err := validName("service", service); err != nil {
		return err
	}
	var next *mirrorer
	if m != nil {
		if err := validName("version", m.Stable); err != nil {
			return err
		}
		if err := validName("version", m.Canary); err != nil {
			return err
		}
		if m.Stable == m.Canary {
			return fmt.Errorf("%w: mirror of %s: stable and canary are both %s", ErrInvalid, service, m.Stable)
		}
		if m.Share < 0 || m.Share > totalWeight {
			return fmt.Errorf("%w: mirror of %s: share %d ppm is outside 0..%d", ErrInvalid, service, m.Share, totalWeight)
		}
		if err := m.Settings.Validate(); err != nil {
			return fmt.Errorf("%w: mirror of %s: %v", ErrInvalid, service, err)
		}
		cfg := *m
		if cfg.Share == 0 {
			cfg.Share = totalWeight
		}
		if cfg.MaxBodyBytes <= 0 {
			cfg.MaxBodyBytes = defaultMirrorBody
		}
		if cfg.Queue <= 0 {
			cfg.Queue = defaultMirrorQueue
		}
		if cfg.Workers <= 0 {
			cfg.Workers = defaultMirrorWorkers
		}
		opts := shadow.Options{IgnoreHeaders: cfg.Settings.IgnoreHeaders}
		rec, err := shadow.NewRecorder(opts, cfg.Settings.ExpectedChanges)
		if err != nil {
			return fmt.Errorf("%w: mirror of %s: %v", ErrInvalid, service, err)
		}
		next = &mirrorer{g: g, service: service, cfg: cfg, rec: rec, opts: opts, queue: make(chan *mirrorJob, cfg.Queue), stop: make(chan struct{})}
	}
	g.mu.Lock()
	sc := g.service(service)
	old := sc.mirror
	if (old == nil && next == nil) || (old != nil && next != nil && reflect.DeepEqual(old.cfg, next.cfg)) {
		g.mu.Unlock()
		return nil // already so: the release engine sets it at every pass
	}
	if old != nil && next != nil && old.cfg.Stable == next.cfg.Stable && old.cfg.Canary == next.cfg.Canary {
		next.rec = old.rec // the same comparison goes on
		next.rec.SetOptions(next.opts, next.cfg.Settings.ExpectedChanges)
	}
	sc.mirror = next
	if next != nil {
		g.mirrorRecs[service] = next.rec
	}
	g.rebuildLocked()
	g.mu.Unlock()
	if old != nil {
		close(old.stop)
		old.wg.Wait()
	}
	if next != nil {
		for range next.cfg.Workers {
			next.wg.Add(1)
			go next.work()
		}
	}
	return nil
}

// MirrorOf returns the mirror configured for a service (nil: off).
func (g *Gateway) MirrorOf(service string) *Mirror {
	g.mu.Lock()
	defer g.mu.Unlock()
	if sc := g.services[service]; sc != nil && sc.mirror != nil {
		m := sc.mirror.cfg
		return &m
	}
	return nil
}

// ShadowSnapshot returns the cumulative counts of a service's mirror: the
// last mirror's when it is off; ok is false when it never had one.
func (g *Gateway) ShadowSnapshot(service string) (shadow.Snapshot, bool) {
	g.mu.Lock()
	rec := g.mirrorRecs[service]
	g.mu.Unlock()
	if rec == nil {
		return shadow.Snapshot{}, false
	}
	return rec.Snapshot(), true
}

// mirrorFor is the core's decision for one request (every serving path
// asks it once the request is routed): the service's mirror when the
// request must be copied, else nil. Requests left out for a reason that
// concerns the mirror are counted.
func (g *Gateway) mirrorFor(rt *routing, method, path []byte, bodyLen int) *mirrorer {
	if rt.s == nil || rt.s.mirror == nil || rt.b == nil || rt.b.cluster != "" {
		return nil
	}
	m := rt.s.mirror
	if rt.b.name != m.cfg.Stable {
		return nil
	}
	if m.cfg.Share < totalWeight {
		n := m.seq.Add(1)
		if n*uint64(m.cfg.Share)/uint64(totalWeight) == (n-1)*uint64(m.cfg.Share)/uint64(totalWeight) {
			return nil
		}
	}
	if !shadow.Mirrorable(string(method), string(rt.route), string(path), m.cfg.Settings.SafeRoutes) {
		m.rec.Counted(false, false, false, true)
		return nil
	}
	if bodyLen > m.cfg.MaxBodyBytes {
		m.rec.Counted(false, false, true, false)
		return nil
	}
	return m
}

// tooLarge counts a request whose body turned out over the limit once it
// had streamed through (h2c bodies of unknown length, h2c.go).
func (m *mirrorer) tooLarge() { m.rec.Counted(false, false, true, false) }

// enqueue queues a copy, or drops and counts it when the queue is full;
// it never blocks. raw is the request as HTTP/1.1 and is kept.
func (m *mirrorer) enqueue(method, route, path []byte, tc *traceContext, raw []byte) {
	j := &mirrorJob{method: string(method), route: string(route), path: string(path), raw: raw}
	if tc != nil {
		j.trace = string(tc.traceID[:])
	}
	select {
	case m.queue <- j:
		m.rec.Counted(true, false, false, false)
	default:
		m.rec.Counted(false, true, false, false)
	}
}

func (m *mirrorer) work() {
	defer m.wg.Done()
	for {
		select {
		case <-m.stop:
			return
		case j := <-m.queue:
			m.exchange(j)
		}
	}
}

// exchange sends one copy to the canary and twice to stable at once and
// records the three answers.
func (m *mirrorer) exchange(j *mirrorJob) {
	t := m.g.table.Load()
	s := t.services[m.service]
	if s == nil {
		return
	}
	stable, canary := s.byVersion[m.cfg.Stable], s.byVersion[m.cfg.Canary]
	if stable == nil || len(stable.eps) == 0 {
		return // nothing to compare with
	}
	now := time.Now().UnixNano()
	p, _ := stable.next(now)
	q, _ := stable.next(now) // another instance when there are two
	var answers [3]*shadow.Answer
	var wg sync.WaitGroup
	for i, u := range []*upstream{p, q, nil} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 2 {
				if canary == nil || len(canary.eps) == 0 {
					answers[i] = &shadow.Answer{Err: "no ready instance of " + m.cfg.Canary}
					return
				}
				u, _ = canary.next(now)
			}
			answers[i] = m.send(u, j)
		}()
	}
	wg.Wait()
	route := j.route
	if r := answers[0].Header.Get(string(hdrRoute)); r != "" && validRouteKey([]byte(r)) {
		route = r
	}
	m.rec.Record(route, j.trace, answers[0], answers[1], answers[2])
}

// send makes one attempt on u's keep-alive pool.
func (m *mirrorer) send(u *upstream, j *mirrorJob) *shadow.Answer {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	if err := req.Read(bufio.NewReader(bytes.NewReader(j.raw))); err != nil {
		return &shadow.Answer{Err: "mirror: cannot re-read the request: " + err.Error()}
	}
	start := time.Now()
	err := u.hc.DoTimeout(req, resp, m.g.opts.UpstreamTimeout)
	a := &shadow.Answer{LatencyMs: float64(time.Since(start)) / float64(time.Millisecond)}
	if err != nil {
		a.Err = err.Error()
		return a
	}
	a.Status = resp.StatusCode()
	a.Header = http.Header{}
	for k, v := range resp.Header.All() {
		a.Header.Add(string(k), string(v))
	}
	body := resp.Body()
	var h hash.Hash = sha256.New()
	h.Write(body)
	h.Sum(a.Digest[:0])
	if len(body) > m.cfg.MaxBodyBytes {
		a.Truncated = true
		body = body[:m.cfg.MaxBodyBytes]
	}
	a.Body = append([]byte(nil), body...)
	return a
}
