package gocacheprog

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/pave-platform/pave/internal/buildcache/tier"
	"github.com/pave-platform/pave/internal/bytesize"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ClientOptions configure the gocacheprog client; ClientOptionsFromEnv
// reads them from the environment, as GOCACHEPROG programs are configured.
type ClientOptions struct {
	URL   string // PAVE_CACHE_URL; empty: local tier only
	Token string // PAVE_CACHE_TOKEN
	Dir   string // PAVE_CACHE_DIR; the local tier
	// ConnectTimeout bounds dialing the server (default 500ms): a runner
	// whose cache server is gone must not wait on it per action.
	ConnectTimeout time.Duration
	// ResponseTimeout bounds waiting for a response's headers (default 5s);
	// a server slower than that counts as down.
	ResponseTimeout time.Duration
	// Uploads is the number of parallel PUTs (default 32: a server that
	// fsyncs each entry answers an upload in milliseconds, not microseconds).
	Uploads int
	// CloseWait bounds how long "close" waits for uploads still running
	// (default 10s, PAVE_CACHE_CLOSE_WAIT).
	CloseWait time.Duration
	Verbose   bool // PAVE_CACHE_VERBOSE=1: counts on stderr at close
	// NoPrefetch turns off fetching, at start, the actions the same build
	// asked for last time (PAVE_CACHE_PREFETCH=0).
	NoPrefetch bool
	// MaxBytes bounds the local tier (PAVE_CACHE_MAX_SIZE, default
	// DefaultMaxSize): at the end of a go command, at most once per
	// TrimInterval, the least recently used entries are removed.
	MaxBytes int64
	// TrimInterval is how often the tier is trimmed (default 1h; the go
	// command trims its own cache once a day, but a shared CI runner fills
	// faster than a laptop).
	TrimInterval time.Duration
	Stderr       io.Writer // the go command's stderr
}

// DefaultMaxSize bounds the local tier when PAVE_CACHE_MAX_SIZE is unset:
// a build of a large Go repository and its tests fills a few GiB.
const DefaultMaxSize = 10 << 30

// ClientOptionsFromEnv reads PAVE_CACHE_URL, PAVE_CACHE_TOKEN,
// PAVE_CACHE_DIR (default <user cache dir>/pave/gocache),
// PAVE_CACHE_MAX_SIZE, PAVE_CACHE_CLOSE_WAIT, PAVE_CACHE_PREFETCH and
// PAVE_CACHE_VERBOSE.
func ClientOptionsFromEnv() (ClientOptions, error) {
	o := ClientOptions{URL: strings.TrimRight(os.Getenv("PAVE_CACHE_URL"), "/"), Token: os.Getenv("PAVE_CACHE_TOKEN"),
		Dir: os.Getenv("PAVE_CACHE_DIR"), Verbose: os.Getenv("PAVE_CACHE_VERBOSE") == "1", Stderr: os.Stderr,
		NoPrefetch: os.Getenv("PAVE_CACHE_PREFETCH") == "0"}
	if o.Dir == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			return o, fmt.Errorf("PAVE_CACHE_DIR is unset and there is no user cache directory (%v); set PAVE_CACHE_DIR", err)
		}
		o.Dir = filepath.Join(d, "pave", "gocache")
	}
	if o.URL != "" && !strings.HasPrefix(o.URL, "http://") && !strings.HasPrefix(o.URL, "https://") {
		return o, fmt.Errorf("PAVE_CACHE_URL %q: want http://host:port or https://host", o.URL)
	}
	if v := os.Getenv("PAVE_CACHE_MAX_SIZE"); v != "" {
		n, err := bytesize.Parse(v)
		if err != nil {
			return o, fmt.Errorf("PAVE_CACHE_MAX_SIZE: %w", err)
		}
		o.MaxBytes = n
	}
	if v := os.Getenv("PAVE_CACHE_CLOSE_WAIT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return o, fmt.Errorf("PAVE_CACHE_CLOSE_WAIT %q: want a duration like 10s", v)
		}
		o.CloseWait = d
	}
	return o, nil
}

// ClientStats count what one go command asked and what it got.
type ClientStats struct {
	Gets, LocalHits, RemoteHits, Misses int64
	// NegativeHits are misses answered without asking the server again.
	NegativeHits                 int64
	Puts, Uploaded, UploadErrors int64
	UploadsDropped, Prefetched   int64
}

// Client is the GOCACHEPROG program: a local disk tier (the DiskPath the go
// command reads must be a local file) in front of a cache server. Remote
// reads are de-duplicated while in flight; uploads run in the background,
// in parallel, and never hold up an answer; when the server fails the
// client says so once and goes on with the local tier alone.
type Client struct {
	o     ClientOptions
	local *tier.Disk
	http  *http.Client

	down     atomic.Bool
	downOnce sync.Once
	readOnly atomic.Bool // the token may not write

	mu       sync.Mutex
	inflight map[string]*fetch

	uploads  chan upload
	uploadWG sync.WaitGroup
	stopCtx  context.Context
	stop     context.CancelFunc

	pre     *prefetcher // nil: prefetching off
	fetched sync.Map    // actions this go command got from the server
	// missing is the negative cache: actions the server said it does not
	// have. The go command asks for an action more than once in one run
	// (go vet asks again for what it compiles, tests for their deps); a
	// miss is not asked again for the rest of this go command, which is
	// the build's duration (an action missing now is put by this very
	// build, so it would be a local hit next time anyway).
	missing sync.Map

	stats struct {
		gets, localHits, remoteHits, misses, negativeHits, puts, uploaded, uploadErrors, dropped, prefetched atomic.Int64
	}
}

type fetch struct {
	done chan struct{}
	e    tier.GoEntry
	ok   bool
}

type upload struct{ action, output string }

// NewClient opens the local tier and, with a URL, the uploaders.
func NewClient(o ClientOptions) (*Client, error) {
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 500 * time.Millisecond
	}
	if o.ResponseTimeout == 0 {
		o.ResponseTimeout = 5 * time.Second
	}
	if o.Uploads == 0 {
		o.Uploads = 32
	}
	if o.CloseWait == 0 {
		o.CloseWait = 10 * time.Second
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxSize
	}
	if o.TrimInterval == 0 {
		o.TrimInterval = time.Hour
	}
	local, err := tier.OpenDisk(o.Dir, tier.DiskOptions{})
	if err != nil {
		return nil, fmt.Errorf("pave cache: local tier (PAVE_CACHE_DIR): %w", err)
	}
	c := &Client{o: o, local: local, inflight: map[string]*fetch{}}
	c.stopCtx, c.stop = context.WithCancel(context.Background())
	if o.URL == "" {
		return c, nil
	}
	dialer := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
	c.http = &http.Client{Transport: &http.Transport{
		DialContext:           dialer.DialContext,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: o.ResponseTimeout,
		// Build outputs are mostly compressed already or small; gzip
		// would cost more CPU than it saves on a runner's network.
		DisableCompression: true,
	}}
	if !o.NoPrefetch {
		c.startPrefetch(manifestKey())
	}
	c.uploads = make(chan upload, 1<<16)
	for range o.Uploads {
		c.uploadWG.Add(1)
		go c.uploader()
	}
	return c, nil
}

// Stats returns the counts so far.
func (c *Client) Stats() ClientStats {
	s := &c.stats
	return ClientStats{Gets: s.gets.Load(), LocalHits: s.localHits.Load(), RemoteHits: s.remoteHits.Load(), Misses: s.misses.Load(), NegativeHits: s.negativeHits.Load(),
		Puts: s.puts.Load(), Uploaded: s.uploaded.Load(), UploadErrors: s.uploadErrors.Load(), UploadsDropped: s.dropped.Load(),
		Prefetched: s.prefetched.Load()}
}

// Serve speaks GOCACHEPROG on r and w until "close" or the end of r. It
// fails only when the go command's stream is broken; a cache that cannot
// answer answers "miss".
func (c *Client) Serve(r io.Reader, w io.Writer) error {
	enc := NewEncoder(w)
	if err := enc.Encode(&Response{KnownCommands: []Cmd{CmdGet, CmdPut, CmdClose}}); err != nil {
		return err
	}
	dec := NewDecoder(r)
	var gets sync.WaitGroup
	for {
		req, err := dec.Decode()
		if err != nil {
			gets.Wait()
			c.finish()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		switch req.Command {
		case CmdGet:
			gets.Add(1)
			go func() {
				defer gets.Done()
				enc.Encode(c.get(req))
			}()
		case CmdPut:
			if err := enc.Encode(c.put(req)); err != nil {
				return err
			}
		case CmdClose:
			gets.Wait()
			c.finish()
			return enc.Encode(&Response{ID: req.ID})
		}
	}
}

func (c *Client) get(req *Request) *Response {
	c.stats.gets.Add(1)
	action := hex.EncodeToString(req.ActionID)
	if c.pre != nil {
		c.pre.note(action)
	}
	if e, ok := c.localEntry(action); ok {
		return c.localHit(req.ID, action, e)
	}
	if c.pre != nil {
		c.pre.wait(c.stopCtx, action)
		if e, ok := c.localEntry(action); ok {
			return c.localHit(req.ID, action, e)
		}
	}
	if _, known := c.missing.Load(action); known {
		c.stats.negativeHits.Add(1)
	} else if e, ok := c.fetch(action); ok {
		c.stats.remoteHits.Add(1)
		return c.hit(req.ID, e)
	}
	c.stats.misses.Add(1)
	return &Response{ID: req.ID, Miss: true}
}

// localHit answers from the local tier; an output the server brought
// (prefetched) counts as a remote hit.
func (c *Client) localHit(id int64, action string, e tier.GoEntry) *Response {
	if _, remote := c.fetched.Load(action); remote {
		c.stats.remoteHits.Add(1)
	} else {
		c.stats.localHits.Add(1)
	}
	return c.hit(id, e)
}

func (c *Client) hit(id int64, e tier.GoEntry) *Response {
	out, _ := hex.DecodeString(e.OutputID)
	t := e.Time
	return &Response{ID: id, OutputID: out, Size: e.Size, Time: &t, DiskPath: c.local.Path(tier.CAS, e.OutputID)}
}

// localEntry reads the action's entry and checks its output is on disk
// with the right size, as the go command's own cache does.
func (c *Client) localEntry(action string) (tier.GoEntry, bool) {
	b, err := os.ReadFile(c.local.Path(tier.AC, action))
	if err != nil {
		return tier.GoEntry{}, false
	}
	e, err := tier.ParseGoEntry(b)
	now := time.Now()
	if err != nil || !c.local.MarkUsed(tier.CAS, e.OutputID, e.Size, now) {
		return tier.GoEntry{}, false
	}
	c.local.MarkUsed(tier.AC, action, -1, now)
	return e, true
}

func (c *Client) put(req *Request) *Response {
	c.stats.puts.Add(1)
	action, output := hex.EncodeToString(req.ActionID), hex.EncodeToString(req.OutputID)
	if err := c.store(action, output, bytes.NewReader(req.Body), req.BodySize, time.Now()); err != nil {
		return &Response{ID: req.ID, Err: "pave cache: " + err.Error()}
	}
	if c.http != nil && !c.down.Load() && !c.readOnly.Load() {
		select {
		case c.uploads <- upload{action, output}:
		default:
			c.stats.dropped.Add(1) // the queue is full: the build comes first
		}
	}
	return &Response{ID: req.ID, DiskPath: c.local.Path(tier.CAS, output)}
}

// store writes an output (verified against its OutputID) and then the
// action's entry into the local
func (c *Client) store(action, output string, body io.Reader, size int64, t time.Time) error {
	if !c.local.Has(tier.CAS, output, size) {
		if err := c.local.Put(tier.CAS, output, body, size); err != nil {
			return err
		}
	}
	return c.storeEntry(action, tier.GoEntry{OutputID: output, Size: size, Time: t})
}

// storeEntry writes the action's entry; its output must be there already.
func (c *Client) storeEntry(action string, e tier.GoEntry) error {
	b := e.Encode()
	return c.local.Put(tier.AC, action, bytes.NewReader(b), int64(len(b)))
}

// fetch gets an action from the server into the local tier; concurrent
// requests for one action share one round trip.
func (c *Client) fetch(action string) (tier.GoEntry, bool) {
	if c.http == nil || c.down.Load() {
		return tier.GoEntry{}, false
	}
	c.mu.Lock()
	if f, ok := c.inflight[action]; ok {
		c.mu.Unlock()
		<-f.done
		return f.e, f.ok
	}
	f := &fetch{done: make(chan struct{})}
	c.inflight[action] = f
	c.mu.Unlock()
	f.e, f.ok = c.download(action)
	close(f.done)
	c.mu.Lock()
	delete(c.inflight, action)
	c.mu.Unlock()
	return f.e, f.ok
}

func (c *Client) download(action string) (tier.GoEntry, bool) {
	ctx, guard, done := c.guarded()
	defer done()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.o.URL+"/go/"+action, nil)
	c.authorize(req)
	res, err := c.http.Do(req)
	if err != nil {
		c.fail(err)
		return tier.GoEntry{}, false
	}
	defer res.Body.Close()
	switch {
	case res.StatusCode == http.StatusNotFound:
		c.missing.Store(action, true)
		return tier.GoEntry{}, false
	case res.StatusCode != http.StatusOK:
		c.fail(statusError(res))
		return tier.GoEntry{}, false
	}
	output := res.Header.Get(tier.GoOutputHeader)
	if tier.CheckKey(output) != nil || res.ContentLength < 0 {
		c.fail(fmt.Errorf("GET /go/%s: answer without a valid %s header or Content-Length", action, tier.GoOutputHeader))
		return tier.GoEntry{}, false
	}
	t, err := http.ParseTime(res.Header.Get("Last-Modified"))
	if err != nil {
		t = time.Now()
	}
	// Put verifies the body against the OutputID: a server cannot make the
	// go command read bytes under a false name.
	if err := c.store(action, output, guard(res.Body), res.ContentLength, t); err != nil {
		if ctx.Err() != nil {
			c.fail(fmt.Errorf("GET /go/%s: the answer stalled for %s", action, c.o.ResponseTimeout))
		} else {
			c.warnf("pave cache: %s: %v; treated as a miss", action, err)
		}
		return tier.GoEntry{}, false
	}
	c.fetched.Store(action, true)
	return tier.GoEntry{OutputID: output, Size: res.ContentLength, Time: t}, true
}

// guarded returns a request context that is cancelled when the response
// makes no progress for ResponseTimeout (the transport's own timeout covers
// only the headers: a server that then stalls must not hang the build),
// the wrapper that counts a body's progress, and the function that ends
// the guard.
func (c *Client) guarded() (context.Context, func(io.Reader) io.Reader, func()) {
	ctx, cancel := context.WithCancel(c.stopCtx)
	t := time.AfterFunc(c.o.ResponseTimeout, cancel)
	guard := func(r io.Reader) io.Reader { return &stallGuard{r: r, timer: t, d: c.o.ResponseTimeout} }
	return ctx, guard, func() { t.Stop(); cancel() }
}

type stallGuard struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
}

func (g *stallGuard) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if n > 0 {
		g.timer.Reset(g.d)
	}
	return n, err
}

func (c *Client) authorize(req *http.Request) {
	if c.o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.o.Token)
	}
}

func (c *Client) uploader() {
	defer c.uploadWG.Done()
	for u := range c.uploads {
		if c.down.Load() || c.readOnly.Load() || c.stopCtx.Err() != nil {
			continue
		}
		if err := c.upload(u); err != nil {
			c.stats.uploadErrors.Add(1)
			c.fail(err)
		} else {
			c.stats.uploaded.Add(1)
		}
	}
}

func (c *Client) upload(u upload) error {
	f, err := os.Open(c.local.Path(tier.CAS, u.output))
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	var body io.Reader = f
	if fi.Size() == 0 {
		body = http.NoBody // else the transport sends an unknown length
	}
	req, _ := http.NewRequestWithContext(c.stopCtx, http.MethodPut, c.o.URL+"/go/"+u.action, body)
	req.ContentLength = fi.Size()
	req.Header.Set(tier.GoOutputHeader, u.output)
	c.authorize(req)
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusForbidden {
		// A reader's token: reading goes on, writing stops quietly.
		if !c.readOnly.Swap(true) {
			c.warnf("pave cache: the token may read but not write (403); this build's outputs stay local")
		}
		return nil
	}
	if res.StatusCode != http.StatusOK {
		return statusError(res)
	}
	return nil
}

func statusError(res *http.Response) error {
	msg, _ := io.ReadAll(io.LimitReader(res.Body, 300))
	return fmt.Errorf("%s %s: %s: %s", res.Request.Method, res.Request.URL.Path, res.Status, strings.TrimSpace(string(msg)))
}

// fail marks the server down for the rest of this go command, saying so
// once: the build goes on at local speed.
func (c *Client) fail(err error) {
	if c.stopCtx.Err() != nil {
		return // closing: requests are being cancelled
	}
	c.down.Store(true)
	c.downOnce.Do(func() {
		c.warnf("pave cache: server %s unavailable (%v); building with the local cache only", c.o.URL, err)
	})
}

func (c *Client) warnf(format string, args ...any) {
	fmt.Fprintf(c.o.Stderr, format+"\n", args...)
}

// finish waits, bounded by CloseWait, for the uploads still queued.
func (c *Client) finish() {
	if c.uploads != nil {
		c.saveManifest()
		close(c.uploads)
		done := make(chan struct{})
		go func() { c.uploadWG.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(c.o.CloseWait):
			c.warnf("pave cache: uploads still running after %s were abandoned (PAVE_CACHE_CLOSE_WAIT)", c.o.CloseWait)
			c.stop()
			<-done
		}
	}
	c.stop()
	if c.pre != nil {
		c.pre.wg.Wait()
	}
	// Trimmed last: uploads read outputs from the tier (and what this go
	// command used is fresh, so never removed).
	if r, err := c.local.Trim(c.o.MaxBytes, c.o.TrimInterval, time.Now()); err != nil {
		c.warnf("pave cache: trimming the local tier %s: %v", c.o.Dir, err)
	} else if r.Ran && c.o.Verbose {
		c.warnf("pave cache: trimmed the local tier from %d to %d bytes (bound %d; %d files removed)", r.Before, r.After, c.o.MaxBytes, r.Removed)
	}
	if c.o.Verbose {
		s := c.Stats()
		c.warnf("pave cache: %d gets (%d local hits, %d remote hits, %d misses, %d of them remembered); %d puts (%d uploaded, %d upload errors, %d dropped); %d prefetched",
			s.Gets, s.LocalHits, s.RemoteHits, s.Misses, s.NegativeHits, s.Puts, s.Uploaded, s.UploadErrors, s.UploadsDropped, s.Prefetched)
	}
}
