package gocacheprog

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/pave-platform/pave/internal/buildcache/tier"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// Prefetching: the go command asks for one action at a time per worker
// (GOMAXPROCS of them), so a cache behind a round trip of 20 ms answers a
// few hundred actions a second however fast it is. The client therefore
// remembers which actions a go command asked for (the manifest, kept on the
// server under a key derived from the module and the command line) and,
// when the same build starts on another runner, fetches them all in
// one stream (POST /go/batch with those the local tier lacks: one round
// trip, whatever the count); the go command's own gets then find them on disk or wait for the
// stream to bring them.

// manifestKey names the manifest of this go command: its module, its
// arguments (read from the parent process on Linux) and the target.
func manifestKey() string {
	var b strings.Builder
	b.WriteString("pave-gocache-manifest v1\n")
	b.WriteString(modulePath() + "\n")
	if args, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", os.Getppid())); err == nil {
		b.Write(bytes.ReplaceAll(args, []byte{0}, []byte{' '}))
	}
	goos, goarch := os.Getenv("GOOS"), os.Getenv("GOARCH")
	if goos == "" {
		goos = runtime.GOOS
	}
	if goarch == "" {
		goarch = runtime.GOARCH
	}
	fmt.Fprintf(&b, "\n%s/%s", goos, goarch)
	s := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(s[:])
}

// modulePath is the module line of the nearest go.mod above the working
// directory ("" outside a module).
func modulePath() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			defer f.Close()
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if m, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
					return strings.Trim(strings.TrimSpace(m), `"`)
				}
			}
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// prefetcher holds what one go command asked for and what the stream of
// the previous build's actions is bringing.
type prefetcher struct {
	key string

	mu      sync.Mutex
	asked   []string
	seen    map[string]bool
	listed  map[string]bool          // the manifest found at start
	pending map[string]chan struct{} // listed, not yet arrived
	ready   chan struct{}            // closed once the list is known (or there is none)
	wg      sync.WaitGroup
}

func (p *prefetcher) note(action string) {
	p.mu.Lock()
	if !p.seen[action] {
		p.seen[action] = true
		p.asked = append(p.asked, action)
	}
	p.mu.Unlock()
}

// wait blocks until the stream has brought the action (or will not): a
// get for a listed action joins the stream instead of paying a round trip
// of its own. It waits for the list first, which costs at most the round
// trip the get would have made anyway.
func (p *prefetcher) wait(ctx context.Context, action string) {
	select {
	case <-p.ready:
	case <-ctx.Done():
		return
	}
	p.mu.Lock()
	ch := p.pending[action]
	p.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

// arrived releases the gets waiting for the action.
func (p *prefetcher) arrived(action string) {
	p.mu.Lock()
	if ch, ok := p.pending[action]; ok {
		close(ch)
		delete(p.pending, action)
	}
	p.mu.Unlock()
}

// end releases every get still waiting: what the stream did not bring
// they fetch themselves.
func (p *prefetcher) end(readyClosed bool) {
	if !readyClosed {
		close(p.ready)
	}
	p.mu.Lock()
	for a, ch := range p.pending {
		close(ch)
		delete(p.pending, a)
	}
	p.mu.Unlock()
}

// startPrefetch reads the manifest of the same build's last run (GET
// /ac/KEY), asks for the actions of it the local tier lacks in one batch
// (POST /go/batch) and writes them into the local tier as they arrive.
func (c *Client) startPrefetch(key string) {
	p := &prefetcher{key: key, seen: map[string]bool{}, listed: map[string]bool{}, pending: map[string]chan struct{}{},
		ready: make(chan struct{})}
	c.pre = p
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		readyClosed := false
		defer func() { p.end(readyClosed) }()
		listed, err := c.readManifest(key)
		if err != nil || len(listed) == 0 {
			return // no manifest yet, or the server is down (said once)
		}
		var want []string
		p.mu.Lock()
		for _, a := range listed {
			p.listed[a] = true
			if _, ok := c.localEntry(a); !ok {
				want = append(want, a)
				p.pending[a] = make(chan struct{})
			}
		}
		p.mu.Unlock()
		close(p.ready)
		readyClosed = true
		if len(want) == 0 {
			return
		}
		body := strings.Join(want, "\n") + "\n"
		ctx, guard, done := c.guarded()
		defer done()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.o.URL+"/go/batch", strings.NewReader(body))
		req.ContentLength = int64(len(body))
		c.authorize(req)
		res, err := c.http.Do(req)
		if err != nil {
			c.fail(err)
			return
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			c.warnf("pave cache: prefetch: %v; fetching one action at a time", statusError(res))
			return
		}
		br := bufio.NewReaderSize(guard(res.Body), 256<<10)
		if _, err := readStreamHead(br); err != nil {
			c.warnf("pave cache: prefetch from %s: %v; fetching one action at a time", c.o.URL, err)
			return
		}
		if err := c.readStream(br, p); err != nil && c.stopCtx.Err() == nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("no data for %s", c.o.ResponseTimeout)
			}
			c.warnf("pave cache: prefetch from %s cut short: %v; fetching the rest one action at a time", c.o.URL, err)
		}
	}()
}

// readManifest returns the actions the manifest lists (none if there is
// no manifest yet).
func (c *Client) readManifest(key string) ([]string, error) {
	// Guarded as well: the go command's first gets wait for this list.
	ctx, guard, done := c.guarded()
	defer done()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.o.URL+"/ac/"+key, nil)
	c.authorize(req)
	res, err := c.http.Do(req)
	if err != nil {
		c.fail(err)
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, nil
	}
	var listed []string
	sc := bufio.NewScanner(io.LimitReader(guard(res.Body), tier.MaxManifestActions*65))
	for sc.Scan() {
		if a := sc.Text(); tier.CheckKey(a) == nil {
			listed = append(listed, a)
		}
	}
	if err := sc.Err(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("GET /ac/%s: the answer stalled for %s", key, c.o.ResponseTimeout)
		}
		c.fail(err)
		return nil, err
	}
	return listed, nil
}

func readStreamHead(br *bufio.Reader) (int, error) {
	line, err := readLine(br)
	if err != nil {
		return 0, err
	}
	num, ok := strings.CutPrefix(line, tier.StreamMagic+" ")
	n, err := strconv.Atoi(num)
	if !ok || err != nil || n < 0 || n > tier.MaxManifestActions {
		return 0, fmt.Errorf("the answer does not start with %q and a count (%.60q)", tier.StreamMagic, line)
	}
	return n, nil
}

// readStream stores each entry of the stream as it arrives.
func (c *Client) readStream(br *bufio.Reader, p *prefetcher) error {
	for {
		line, err := readLine(br)
		if err != nil {
			return err
		}
		if line == "end" {
			return nil
		}
		f := strings.Fields(line)
		if len(f) == 2 && f[1] == "-" && tier.CheckKey(f[0]) == nil {
			c.missing.Store(f[0], true)
			p.arrived(f[0])
			continue
		}
		if len(f) < 4 || len(f) > 5 || tier.CheckKey(f[0]) != nil || (len(f) == 5 && f[4] != "=") {
			return fmt.Errorf("bad stream line %.100q", line)
		}
		e, err := tier.ParseGoEntry([]byte("go1 " + strings.Join(f[1:4], " ")))
		if err != nil {
			return err
		}
		if e.Size > tier.MaxObjectSize {
			return fmt.Errorf("action %s: output of %d bytes, more than %d", f[0], e.Size, tier.MaxObjectSize)
		}
		action := f[0]
		if len(f) == 4 {
			if c.local.Has(tier.CAS, e.OutputID, e.Size) {
				_, err = io.CopyN(io.Discard, br, e.Size)
			} else {
				// Put reads exactly Size bytes and verifies them against
				// the OutputID; a mismatch leaves the stream in step.
				err = c.local.Put(tier.CAS, e.OutputID, io.LimitReader(br, e.Size), e.Size)
			}
			if errors.Is(err, tier.ErrHashMismatch) {
				c.warnf("pave cache: prefetched %s: %v; treated as a miss", action, err)
				p.arrived(action)
				continue
			}
			if err != nil {
				return fmt.Errorf("action %s: %w", action, err)
			}
		}
		if !c.local.Has(tier.CAS, e.OutputID, e.Size) || c.storeEntry(action, e) != nil {
			p.arrived(action) // left to a single fetch
			continue
		}
		c.fetched.Store(action, true)
		c.stats.prefetched.Add(1)
		p.arrived(action)
	}
}

// readLine reads one line of the stream without its newline; lines are
// short, so a longer one is an error.
func readLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	return string(line[:len(line)-1]), nil
}

// saveManifest stores what this go command asked for, unless the manifest
// it started from already listed exactly that.
func (c *Client) saveManifest() {
	p := c.pre
	if p == nil || c.down.Load() || c.readOnly.Load() {
		return
	}
	p.mu.Lock()
	same := len(p.asked) == len(p.listed)
	for _, a := range p.asked {
		same = same && p.listed[a]
	}
	body := strings.Join(p.asked, "\n") + "\n"
	p.mu.Unlock()
	if same || len(p.asked) == 0 {
		return
	}
	req, _ := http.NewRequestWithContext(c.stopCtx, http.MethodPut, c.o.URL+"/ac/"+p.key, strings.NewReader(body))
	req.ContentLength = int64(len(body))
	c.authorize(req)
	if res, err := c.http.Do(req); err == nil {
		res.Body.Close()
	}
}
