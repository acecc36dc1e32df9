package gocacheprog

import (
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
func TestClientPrefetchesWhatTheSameBuildAskedFor(t *testing.T) {
	disk, _ := tier.OpenDisk(t.TempDir(), tier.DiskOptions{MaxBytes: 1 << 20})
	ts := httptest.NewServer(buildcache.NewServer(&buildcache.Store{Disk: disk}, nil))
	defer ts.Close()
	var actions [][]byte
	for i := range 20 {
		a, o, b := ids(byte(10 + i))
		actions = append(actions, a)
		put, _ := http.NewRequest("PUT", ts.URL+"/go/"+fmt.Sprintf("%x", a), bytes.NewReader(b))
		put.Header.Set(tier.GoOutputHeader, fmt.Sprintf("%x", o))
		if res, err := http.DefaultClient.Do(put); err != nil || res.StatusCode != 200 {
			t.Fatalf("seeding the server: %v %v", err, res)
		}
	}
	// Runner 1 asks for every action; its manifest is saved at the end.
	first, _ := NewClient(ClientOptions{URL: ts.URL, Dir: t.TempDir()})
	for i, a := range actions {
		if r := first.get(&Request{ID: int64(i), Command: CmdGet, ActionID: a}); r.Miss {
			t.Fatalf("runner 1 missed %x", a)
		}
	}
	first.finish()

	// Runner 2 has them on its disk before its go command asks.
	second, _ := NewClient(ClientOptions{URL: ts.URL, Dir: t.TempDir()})
	second.pre.wg.Wait()
	if n := second.Stats().Prefetched; n != 20 {
		t.Fatalf("prefetched %d of 20 actions", n)
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
	second.finish()
}
