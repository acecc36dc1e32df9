package gocacheprog

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/pave-platform/pave/internal/buildcache/tier"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// Prefetching: the go command asks for one action at a time per worker
// (GOMAXPROCS of them), so a cache behind a round trip of 20 ms answers a
// few hundred actions a second however fast it is. The client therefore
// remembers which actions a go command asked for (the manifest, kept on the
// server under a key derived from the module and the command line) and,
// when the same build starts on another runner, fetches them all in
// parallel at once; the go command's own gets then find them on disk or
// join the fetch already in flight.

// prefetchWorkers is how many manifest entries are fetched at once.
const prefetchWorkers = 16

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

// prefetcher holds what one go command asked for and what was prefetched.
type prefetcher struct {
	key string

	mu     sync.Mutex
	asked  []string
	seen   map[string]bool
	listed map[string]bool // the manifest found at start
	wg     sync.WaitGroup
}

func (p *prefetcher) note(action string) {
	p.mu.Lock()
	if !p.seen[action] {
		p.seen[action] = true
		p.asked = append(p.asked, action)
	}
	p.mu.Unlock()
}

// startPrefetch reads the manifest and fetches its actions in the
// background.
func (c *Client) startPrefetch(key string) {
	p := &prefetcher{key: key, seen: map[string]bool{}, listed: map[string]bool{}}
	c.pre = p
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		req, _ := http.NewRequestWithContext(c.stopCtx, http.MethodGet, c.o.URL+"/ac/"+key, nil)
		c.authorize(req)
		res, err := c.http.Do(req)
		if err != nil {
			c.fail(err)
			return
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return // no manifest yet (404), or nothing usable
		}
		var todo []string
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if a := sc.Text(); tier.CheckKey(a) == nil {
				todo = append(todo, a)
			}
		}
		p.mu.Lock()
		for _, a := range todo {
			p.listed[a] = true
		}
		p.mu.Unlock()
		work := make(chan string)
		for range prefetchWorkers {
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				for a := range work {
					if _, ok := c.localEntry(a); !ok {
						if _, ok := c.fetch(a); ok {
							c.stats.prefetched.Add(1)
						}
					}
				}
			}()
		}
		for _, a := range todo {
			if c.stopCtx.Err() != nil || c.down.Load() {
				break
			}
			work <- a
		}
		close(work)
	}()
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
