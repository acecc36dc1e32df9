package gocacheprog

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"github.com/pave-platform/pave/internal/buildcache"
	"github.com/pave-platform/pave/internal/buildcache/tier"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// progSession drives a Client through the protocol as the go command does
// and returns its responses by ID.
func progSession(t *testing.T, c *Client, reqs []Request) map[int64]Response {
	t.Helper()
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	for _, r := range reqs {
		enc.Encode(r)
		if r.BodySize > 0 {
			in.WriteString("\n")
			enc.Encode(r.Body) // a base64 JSON string
		}
	}
	var out bytes.Buffer
	if err := c.Serve(&in, &out); err != nil {
		t.Fatal(err)
	}
	got := map[int64]Response{}
	dec := json.NewDecoder(&out)
	for {
		var r Response
		if err := dec.Decode(&r); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		got[r.ID] = r
	}
	if len(got[0].KnownCommands) != 3 {
		t.Fatalf("first message %+v: want the known commands", got[0])
	}
	return got
}

func ids(b byte) ([]byte, []byte, []byte) {
	body := []byte(fmt.Sprintf("output %d", b))
	out := sha256Bytes(body)
	return bytes.Repeat([]byte{b}, 32), out, body
}

func sha256Bytes(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

func TestClientDegradesWhenTheServerIsDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens there
	var stderr bytes.Buffer
	c, err := NewClient(ClientOptions{URL: "http://" + addr, Dir: t.TempDir(), Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	a1, _, _ := ids(1)
	a2, _, _ := ids(2)
	// Gets are answered concurrently, so the put is of another action.
	a3, o1, b1 := ids(4)
	start := time.Now()
	got := progSession(t, c, []Request{
		{ID: 1, Command: CmdGet, ActionID: a1},
		{ID: 2, Command: CmdGet, ActionID: a2},
		{ID: 3, Command: CmdPut, ActionID: a3, OutputID: o1, BodySize: int64(len(b1)), Body: b1},
		{ID: 4, Command: CmdGet, ActionID: a3},
		{ID: 5, Command: CmdClose},
	})
	if time.Since(start) > 3*time.Second {
		t.Fatalf("a session against a dead server took %s", time.Since(start))
	}
	if !got[1].Miss || !got[2].Miss || got[1].Err != "" {
		t.Fatalf("gets against a dead server: %+v %+v", got[1], got[2])
	}
	if got[3].DiskPath == "" || got[3].Err != "" {
		t.Fatalf("put: %+v", got[3])
	}
	if b, err := os.ReadFile(got[4].DiskPath); err != nil || !bytes.Equal(b, b1) || got[4].Miss || !bytes.Equal(got[4].OutputID, o1) {
		t.Fatalf("get after put: %+v (%v)", got[4], err)
	}
	if _, ok := got[5]; !ok {
		t.Fatal("close was not answered")
	}
	if n := strings.Count(stderr.String(), "\n"); n != 1 || !strings.Contains(stderr.String(), "unavailable") {
		t.Fatalf("stderr should say once that the server is gone:\n%s", stderr.String())
	}
}

func TestClientSharesOneFetchAndUploadsInBackground(t *testing.T) {
	disk, _ := tier.OpenDisk(t.TempDir(), tier.DiskOptions{MaxBytes: 1 << 20})
	srv := buildcache.NewServer(&buildcache.Store{Disk: disk}, nil)
	var gets atomic.Int64
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "GET" {
			gets.Add(1)
			<-release // hold the first answer so the others pile up behind it
		}
		srv.ServeHTTP(w, r)
	}))
	defer ts.Close()
	a, o, b := ids(3)
	put, _ := http.NewRequest("PUT", ts.URL+"/go/"+fmt.Sprintf("%x", a), bytes.NewReader(b))
	put.Header.Set(tier.GoOutputHeader, fmt.Sprintf("%x", o))
	if res, err := http.DefaultClient.Do(put); err != nil || res.StatusCode != 200 {
		t.Fatalf("seeding the server: %v %v", err, res)
	}

	c, err := NewClient(ClientOptions{URL: ts.URL, Dir: t.TempDir(), NoPrefetch: true})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	resps := make([]*Response, 10)
	for i := range resps {
		wg.Add(1)
		go func() { defer wg.Done(); resps[i] = c.get(&Request{ID: int64(i), Command: CmdGet, ActionID: a}) }()
	}
	time.Sleep(200 * time.Millisecond)
	close(release)
	wg.Wait()
	if gets.Load() != 1 {
		t.Fatalf("10 concurrent gets of one action made %d requests, want 1", gets.Load())
	}
	for _, r := range resps {
		if r.Miss || !bytes.Equal(r.OutputID, o) {
			t.Fatalf("shared fetch answered %+v", r)
		}
		if got, _ := os.ReadFile(r.DiskPath); !bytes.Equal(got, b) {
			t.Fatalf("DiskPath holds %q", got)
		}
	}
	c.finish()
}

// A runner that starts the same build prefetches, at start and in
// parallel, what the previous runner's go command asked for.
// countingServer is a real cache server that counts the requests it gets
// by method and route ("GET /go/", "POST /go/").
func countingServer(t *testing.T) (*httptest.Server, func(route string) int64) {
	disk, err := tier.OpenDisk(t.TempDir(), tier.DiskOptions{MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	srv := buildcache.NewServer(&buildcache.Store{Disk: disk}, nil)
	var mu sync.Mutex
	counts := map[string]int64{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := r.Method + " " + r.URL.Path[:strings.LastIndex(r.URL.Path, "/")+1]
		mu.Lock()
		counts[route]++
		mu.Unlock()
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts, func(route string) int64 {
		mu.Lock()
		defer mu.Unlock()
		return counts[route]
	}
}

func seed(t *testing.T, url string, action, output, body []byte) {
	t.Helper()
	put, _ := http.NewRequest("PUT", url+"/go/"+fmt.Sprintf("%x", action), bytes.NewReader(body))
	put.Header.Set(tier.GoOutputHeader, fmt.Sprintf("%x", output))
	res, err := http.DefaultClient.Do(put)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("seeding the server: %v %v", err, res)
	}
	res.Body.Close()
}

func TestClientRemembersMissesForTheBuild(t *testing.T) {
	ts, count := countingServer(t)
	c, err := NewClient(ClientOptions{URL: ts.URL, Dir: t.TempDir(), NoPrefetch: true})
	if err != nil {
		t.Fatal(err)
	}
	absent, _, _ := ids(7)
	for id := int64(1); id <= 3; id++ {
		if r := c.get(&Request{ID: id, Command: CmdGet, ActionID: absent}); !r.Miss {
			t.Fatalf("get %d of an action the server lacks: %+v, want a miss", id, r)
		}
	}
	c.finish()
	if n := count("GET /go/"); n != 1 {
		t.Fatalf("three gets of one missing action asked the server %d times, want 1", n)
	}
	if s := c.Stats(); s.Misses != 3 || s.NegativeHits != 2 {
		t.Fatalf("stats %+v: want 3 misses, 2 of them remembered", s)
	}
	// A new go command (a new build) asks again: the server may have it now.
	a, o, b := ids(7)
	seed(t, ts.URL, a, o, b)
	c2, _ := NewClient(ClientOptions{URL: ts.URL, Dir: t.TempDir(), NoPrefetch: true})
	if r := c2.get(&Request{ID: 1, Command: CmdGet, ActionID: a}); r.Miss {
		t.Fatalf("the next build still misses %x", a)
	}
	c2.finish()
}

func TestClientPrefetchesWhatTheSameBuildAskedFor(t *testing.T) {
	ts, count := countingServer(t)
	var actions [][]byte
	for i := range 20 {
		a, o, b := ids(byte(10 + i))
		actions = append(actions, a)
		seed(t, ts.URL, a, o, b)
	}
	// Two actions share one output: the stream sends it once.
	a, _, _ := ids(200)
	_, o, b := ids(10)
	seed(t, ts.URL, a, o, b)
	actions = append(actions, a)
	absent, _, _ := ids(201) // a miss runner 1 had; the stream says so
	// Runner 1 asks for every action; its manifest is saved at the end.
	first, _ := NewClient(ClientOptions{URL: ts.URL, Dir: t.TempDir()})
	for i, a := range actions {
		if r := first.get(&Request{ID: int64(i), Command: CmdGet, ActionID: a}); r.Miss {
			t.Fatalf("runner 1 missed %x", a)
		}
	}
	if r := first.get(&Request{ID: 99, Command: CmdGet, ActionID: absent}); !r.Miss {
		t.Fatalf("runner 1 hit an absent action")
	}
	first.finish()
	singles := count("GET /go/")

	// Runner 2 has them on its disk before its go command asks, from one
	// request.
	second, _ := NewClient(ClientOptions{URL: ts.URL, Dir: t.TempDir()})
	second.pre.wg.Wait()
	if n := second.Stats().Prefetched; n != 21 {
		t.Fatalf("prefetched %d of 21 actions", n)
	}
	for _, a := range actions {
		if _, ok := second.localEntry(fmt.Sprintf("%x", a)); !ok {
			t.Fatalf("action %x not prefetched", a)
		}
	}
	r := second.get(&Request{ID: 1, Command: CmdGet, ActionID: actions[3]})
	if r.Miss || second.Stats().RemoteHits != 1 {
		t.Fatalf("a prefetched action: %+v, stats %+v", r, second.Stats())
	}
	if r := second.get(&Request{ID: 2, Command: CmdGet, ActionID: absent}); !r.Miss {
		t.Fatalf("an action the server lacks: %+v", r)
	}
	second.finish()
	if n := count("POST /go/"); n != 1 {
		t.Fatalf("%d batch requests, want one (runner 2's; runner 1 had no manifest)", n)
	}
	if n := count("GET /go/") - singles; n != 0 {
		t.Fatalf("runner 2 made %d single fetches; the stream (and its misses) should have answered all", n)
	}
}

func TestClientRefusesAForgedPrefetchStream(t *testing.T) {
	good, o1, b1 := ids(1)
	forged, o2, _ := ids(2)
	later, o3, b3 := ids(3)
	var stream bytes.Buffer
	fmt.Fprintf(&stream, "%s 3\n", tier.StreamMagic)
	fmt.Fprintf(&stream, "%x %x %d 1\n%s", good, o1, len(b1), b1)
	fmt.Fprintf(&stream, "%x %x 5 1\nEVIL!", forged, o2) // not the bytes of o2
	fmt.Fprintf(&stream, "%x %x %d 1\n%s", later, o3, len(b3), b3)
	stream.WriteString("end\n")
	var singles atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/ac/"): // the manifest
			fmt.Fprintf(w, "%x\n%x\n%x\n", good, forged, later)
			return
		case r.URL.Path == "/go/batch":
			w.Write(stream.Bytes())
			return
		}
		singles.Add(1)
		http.NotFound(w, r)
	}))
	defer ts.Close()
	var stderr bytes.Buffer
	c, _ := NewClient(ClientOptions{URL: ts.URL, Dir: t.TempDir(), Stderr: &stderr})
	c.pre.wg.Wait()
	if r := c.get(&Request{ID: 1, Command: CmdGet, ActionID: forged}); !r.Miss {
		t.Fatalf("a forged output was served: %+v", r)
	}
	for _, a := range [][]byte{good, later} {
		if r := c.get(&Request{ID: 2, Command: CmdGet, ActionID: a}); r.Miss {
			t.Fatalf("an honest entry after the forged one was lost: %x", a)
		}
	}
	c.finish()
	if !strings.Contains(stderr.String(), "does not match") {
		t.Fatalf("stderr %q: want the refused output named", stderr.String())
	}
	if singles.Load() != 1 {
		t.Fatalf("%d single fetches, want 1 (the forged action, asked again)", singles.Load())
	}
}

func TestClientTrimsItsLocalTierToTheBound(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	// Ten actions of 1,000-byte outputs, action i last used 20-i hours ago.
	c, err := NewClient(ClientOptions{Dir: dir, MaxBytes: 5000})
	if err != nil {
		t.Fatal(err)
	}
	var actions [][]byte
	for i := range 10 {
		a := bytes.Repeat([]byte{byte(i + 1)}, 32)
		body := bytes.Repeat([]byte{byte(i)}, 1000)
		o := sha256Bytes(body)
		if r := c.put(&Request{ID: int64(i), Command: CmdPut, ActionID: a, OutputID: o, BodySize: 1000, Body: body}); r.Err != "" {
			t.Fatal(r.Err)
		}
		old := now.Add(-time.Duration(20-i) * time.Hour)
		os.Chtimes(c.local.Path(tier.AC, fmt.Sprintf("%x", a)), old, old)
		os.Chtimes(c.local.Path(tier.CAS, fmt.Sprintf("%x", o)), old, old)
		actions = append(actions, a)
	}
	// Using the oldest action makes it the most recently used.
	if r := c.get(&Request{ID: 100, Command: CmdGet, ActionID: actions[0]}); r.Miss {
		t.Fatal("action 0 missing before the trim")
	}
	c.finish()

	// Nine tenths of 5,000 bytes hold four actions (1,000 bytes and an
	// entry of ~90 each): action 0 (just used) and the three newest.
	after, _ := NewClient(ClientOptions{Dir: dir, MaxBytes: 5000})
	for i, a := range actions {
		r := after.get(&Request{ID: int64(i), Command: CmdGet, ActionID: a})
		if keep := i == 0 || i >= 7; r.Miss == keep {
			t.Errorf("action %d (used %dh ago): miss=%v after the trim, want kept=%v", i, 20-i, r.Miss, keep)
		}
	}
	// Within the interval the next go command does not walk the tier again.
	for i := range 3 {
		a := bytes.Repeat([]byte{byte(50 + i)}, 32)
		body := bytes.Repeat([]byte{byte(50 + i)}, 1000)
		after.put(&Request{ID: int64(50 + i), Command: CmdPut, ActionID: a, OutputID: sha256Bytes(body), BodySize: 1000, Body: body})
	}
	after.finish()
	if r, _ := after.local.Trim(5000, time.Hour, time.Now()); r.Ran {
		t.Fatal("trimmed again within the interval")
	}
	// After the interval it trims again, but never what was used within
	// the last hour (another go command may be reading it): the tier stays
	// over its bound until those entries age.
	r, err := after.local.Trim(5000, time.Hour, time.Now().Add(2*time.Hour))
	if err != nil || !r.Ran || r.Removed == 0 {
		t.Fatalf("a trim after the interval: %+v, %v", r, err)
	}
	if r, _ := after.local.Trim(5000, time.Minute, time.Now().Add(3*time.Hour)); r.After > 4500 {
		t.Fatalf("after all entries aged the tier holds %d bytes, want at most 4500: %+v", r.After, r)
	}
}

func TestClientOptionsFromEnvReadsTheBound(t *testing.T) {
	t.Setenv("PAVE_CACHE_DIR", t.TempDir())
	t.Setenv("PAVE_CACHE_MAX_SIZE", "2GiB")
	o, err := ClientOptionsFromEnv()
	if err != nil || o.MaxBytes != 2<<30 {
		t.Fatalf("PAVE_CACHE_MAX_SIZE=2GiB: %d, %v", o.MaxBytes, err)
	}
	t.Setenv("PAVE_CACHE_MAX_SIZE", "lots")
	if _, err := ClientOptionsFromEnv(); err == nil || !strings.Contains(err.Error(), "PAVE_CACHE_MAX_SIZE") || !strings.Contains(err.Error(), "10GiB") {
		t.Fatalf("a bad PAVE_CACHE_MAX_SIZE: %v; want an error naming the variable and an example", err)
	}
}

// FuzzBatchStream feeds arbitrary server answers to the stream reader: it
// must never panic, and every entry it stores must name an output on disk
// whose bytes hash to its OutputID.
func FuzzBatchStream(f *testing.F) {
	a, o, b := ids(1)
	f.Add([]byte(fmt.Sprintf("%x %x %d 1\n%s%x -\nend\n", a, o, len(b), b, a)))
	f.Add([]byte(fmt.Sprintf("%x %x 5 1\nEVIL!%x %x %d 1 =\nend\n", a, o, a, o, len(b))))
	f.Add([]byte(fmt.Sprintf("%x %x 99999999999 1\nshort", a, o)))
	f.Add([]byte("end\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		dir := t.TempDir()
		c, err := NewClient(ClientOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		p := &prefetcher{pending: map[string]chan struct{}{}, ready: make(chan struct{})}
		c.readStream(bufio.NewReader(bytes.NewReader(in)), p)
		entries, _ := filepath.Glob(filepath.Join(dir, "ac", "*", "*"))
		for _, e := range entries {
			got, ok := c.localEntry(filepath.Base(e))
			if !ok {
				continue // an entry whose output is not there is a miss
			}
			body, err := os.ReadFile(c.local.Path(tier.CAS, got.OutputID))
			if err != nil || fmt.Sprintf("%x", sha256Bytes(body)) != got.OutputID {
				t.Fatalf("stored %s under OutputID %s, bytes of another hash", filepath.Base(e), got.OutputID)
			}
		}
	})
}

// A server that answers the headers and then stalls must not hang the
// build: the stream is abandoned after ResponseTimeout without progress,
// the gets waiting for it go on, and a stalled single fetch marks the
// server down.
func TestClientAbandonsAStalledServer(t *testing.T) {
	listed, o, b := ids(1)
	stall := make(chan struct{})
	defer close(stall)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/ac/"):
			fmt.Fprintf(w, "%x\n", listed)
			return
		case r.URL.Path == "/go/batch":
			fmt.Fprintf(w, "%s 1\n%x %x %d 1\n%s", tier.StreamMagic, listed, o, len(b), b[:3])
		default:
			w.Header().Set(tier.GoOutputHeader, fmt.Sprintf("%x", o))
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.Write(b[:3])
		}
		w.(http.Flusher).Flush()
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	defer ts.Close()
	var stderr lockedWriter
	c, _ := NewClient(ClientOptions{URL: ts.URL, Dir: t.TempDir(), ResponseTimeout: 300 * time.Millisecond, Stderr: &stderr})
	start := time.Now()
	if r := c.get(&Request{ID: 1, Command: CmdGet, ActionID: listed}); !r.Miss {
		t.Fatalf("a stalled answer gave a hit: %+v", r)
	}
	other, _, _ := ids(2)
	if r := c.get(&Request{ID: 2, Command: CmdGet, ActionID: other}); !r.Miss {
		t.Fatalf("a stalled server gave a hit: %+v", r)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("two gets from a stalled server took %s", took)
	}
	c.finish()
	if out := stderr.String(); !strings.Contains(out, "cut short") || !strings.Contains(out, "unavailable") {
		t.Fatalf("stderr %q: want the stream and the server named once each", out)
	}

	// A manifest that stalls: the go command's first gets wait for it, so
	// it is guarded as well.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%x\n", listed)
		w.(http.Flusher).Flush()
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	c2, _ := NewClient(ClientOptions{URL: slow.URL, Dir: t.TempDir(), ResponseTimeout: 300 * time.Millisecond})
	start = time.Now()
	if r := c2.get(&Request{ID: 1, Command: CmdGet, ActionID: listed}); !r.Miss {
		t.Fatalf("a stalled manifest gave a hit: %+v", r)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a get behind a stalled manifest took %s", took)
	}
	c2.finish()
}

type lockedWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
