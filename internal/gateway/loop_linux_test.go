//go:build linux

package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// noLoopEnv re-runs the package's tests with the event loop off, so both
// serving paths run every end-to-end test.
const noLoopEnv = "PAVE_GATEWAY_TEST_NO_EVENT_LOOP"

func init() {
	if os.Getenv(noLoopEnv) != "" {
		serveNoEventLoop = true
	}
}

// TestGoroutinePathSuite runs the whole package again with NoEventLoop
// forced, in a child process.
func TestGoroutinePathSuite(t *testing.T) {
	if testing.Short() || serveNoEventLoop {
		t.Skip("the goroutine-path run is skipped with -short and inside itself")
	}
	run := goroutinePathRun
	if run == nil { // not started by TestMain (a -run filter): now
		run = startGoroutinePathRun()
	}
	<-run.done
	if run.err != nil {
		t.Fatalf("the tests with NoEventLoop failed: %v\n%s", run.err, run.out.String())
	}
}

// goroutinePathRun is the child run of TestGoroutinePathSuite when
// TestMain started it: the package's tests are sequential, so waiting for
// TestGoroutinePathSuite's turn would add the child's minutes to theirs
// rather than overlap them.
var goroutinePathRun *childRun

type childRun struct {
	done chan struct{} // closed when the child has exited
	out  bytes.Buffer
	err  error
}

func startGoroutinePathRun() *childRun {
	r := &childRun{done: make(chan struct{})}
	cmd := exec.Command(os.Args[0], "-test.run", "^Test", "-test.skip", "^TestLoop|^TestGoroutinePathSuite$")
	cmd.Env = append(os.Environ(), noLoopEnv+"=1")
	cmd.Stdout, cmd.Stderr = &r.out, &r.out
	if r.err = cmd.Start(); r.err != nil {
		close(r.done)
		return r
	}
	go func() { r.err = cmd.Wait(); close(r.done) }()
	return r
}

func init() {
	// TestMain starts the child run at once when the whole package runs
	// (no -run: a filter would select other tests only, or this one
	// alone, which then starts it itself).
	beforeTests = func() {
		if testing.Short() || serveNoEventLoop || flag.Lookup("test.run").Value.String() != "" {
			return
		}
		if skip := flag.Lookup("test.skip").Value.String(); skip != "" && regexp.MustCompile(skip).MatchString("TestGoroutinePathSuite") {
			return
		}
		if flag.Lookup("test.list").Value.String() != "" {
			return
		}
		goroutinePathRun = startGoroutinePathRun()
	}
}

func loopGateway(t *testing.T, o Options) *Gateway {
	t.Helper()
	if serveNoEventLoop {
		t.Fatal("an event-loop test ran with NoEventLoop forced: TestGoroutinePathSuite must leave TestLoop* out")
	}
	if o.Log == nil {
		o.Log = quietLog()
	}
	return New(o)
}

// rawClient is a keep-alive HTTP/1.1 connection driven by hand.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t *testing.T, gw string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", gw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawClient{t: t, conn: c, br: bufio.NewReader(c)}
}

func (c *rawClient) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) read(method string) (*http.Response, []byte) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	return resp, b
}

func TestLoopSplitExact(t *testing.T) {
	g := loopGateway(t, Options{})
	v1, v2 := startUpstream(t, "v1"), startUpstream(t, "v2")
	g.SetEndpoints("orders", "v1", []string{v1.addr})
	g.SetEndpoints("orders", "v2", []string{v2.addr})
	if err := g.SetWeights("orders", map[string]int64{"v1": 990_000, "v2": 10_000}); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, g)
	c := dialRaw(t, gw)
	got := map[string]int{}
	for range 1000 {
		c.send("GET /a HTTP/1.1\r\nHost: orders.localhost\r\n\r\n")
		resp, body := c.read("GET")
		v, _, _ := strings.Cut(string(body), " ")
		if resp.Header.Get("X-Pave-Version") != v {
			t.Fatalf("X-Pave-Version %q for a body from %q", resp.Header.Get("X-Pave-Version"), v)
		}
		got[v]++
	}
	if got["v1"] != 990 || got["v2"] != 10 {
		t.Fatalf("split over the loop %v, want v1=990 v2=10", got)
	}
	if n := g.loopRequests.Load(); n != 1000 {
		t.Fatalf("the loop served %d requests, want all 1000", n)
	}
	if n := g.handovers.Load(); n != 0 {
		t.Fatalf("%d handovers for plain requests", n)
	}
	if n := g.Snapshot("orders")["v2"].Total.Requests; n != 10 {
		t.Fatalf("stats count %d v2 requests, want 10", n)
	}
}

func TestLoopRequestInSegments(t *testing.T) {
	g := loopGateway(t, Options{})
	v1 := startUpstream(t, "v1")
	g.SetEndpoints("orders", "v1", []string{v1.addr})
	gw := startGateway(t, g)
	c := dialRaw(t, gw)
	req := "POST /pay?x=1 HTTP/1.1\r\nHost: orders.localhost\r\nContent-Length: 11\r\nX-Pave-Caller: web\r\n\r\nhello world"
	for i := 0; i < len(req); i += 7 {
		c.send(req[i:min(i+7, len(req))])
		time.Sleep(2 * time.Millisecond)
	}
	_, body := c.read("POST")
	if string(body) != "v1 /pay hello world" {
		t.Fatalf("body %q", body)
	}
	// Two requests in one segment (pipelined), then the next one.
	c.send("GET /one HTTP/1.1\r\nHost: orders.localhost\r\n\r\nGET /two HTTP/1.1\r\nHost: orders.localhost\r\n\r\n")
	for _, want := range []string{"v1 /one ", "v1 /two "} {
		if _, body := c.read("GET"); string(body) != want {
			t.Fatalf("pipelined answer %q, want %q", body, want)
		}
	}
	if g.handovers.Load() != 0 || g.loopRequests.Load() != 3 {
		t.Fatalf("loop requests %d, handovers %d; want 3, 0", g.loopRequests.Load(), g.handovers.Load())
	}
}

func TestLoopKeepAliveReuse(t *testing.T) {
	var conns atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	g := loopGateway(t, Options{})
	g.SetEndpoints("orders", "v1", []string{ln.Addr().String()})
	gw := startGateway(t, g)
	c := dialRaw(t, gw)
	for range 200 {
		c.send("GET / HTTP/1.1\r\nHost: orders.localhost\r\n\r\n")
		if _, body := c.read("GET"); string(body) != "ok" {
			t.Fatalf("body %q", body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("200 sequential requests opened %d upstream connections, want 1", n)
	}
}

// TestLoopBodiesBothWays: request bodies up to the inline limit stay on
// the loop, larger ones are handed over; large, chunked and
// close-delimited responses stream through, also to a slow reader.
func TestLoopBodiesBothWays(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%x", sha256.Sum256(b))
		case "/big":
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			w.Write(big)
		case "/chunked":
			for i := range 5 {
				fmt.Fprintf(w, "part %d;", i)
				w.(http.Flusher).Flush()
				time.Sleep(5 * time.Millisecond)
			}
		case "/close":
			w.Header().Set("Connection", "close")
			hj, _, _ := w.(http.Hijacker).Hijack()
			io.WriteString(hj, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close")
			hj.Close()
		}
	})
	g := loopGateway(t, Options{})
	g.SetEndpoints("files", "v1", []string{up})
	gw := startGateway(t, g)

	c := dialRaw(t, gw)
	small := bytes.Repeat([]byte("x"), 40<<10)
	c.send("POST /echo HTTP/1.1\r\nHost: files.localhost\r\nContent-Length: " + strconv.Itoa(len(small)) + "\r\n\r\n" + string(small))
	if _, body := c.read("POST"); string(body) != fmt.Sprintf("%x", sha256.Sum256(small)) {
		t.Fatalf("40 KiB body arrived altered: %s", body)
	}
	if g.handovers.Load() != 0 {
		t.Fatal("a 40 KiB body was handed over")
	}
	c.send("GET /chunked HTTP/1.1\r\nHost: files.localhost\r\n\r\n")
	resp, body := c.read("GET")
	if string(body) != "part 0;part 1;part 2;part 3;part 4;" || resp.TransferEncoding == nil {
		t.Fatalf("chunked answer %q (transfer encoding %v)", body, resp.TransferEncoding)
	}
	// A slow reader of 8 MiB: the loop must hold the upstream back, not
	// buffer the whole answer, and deliver every byte.
	c.send("GET /big HTTP/1.1\r\nHost: files.localhost\r\n\r\n")
	time.Sleep(200 * time.Millisecond)
	resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	buf := make([]byte, 64<<10)
	for {
		n, err := resp.Body.Read(buf)
		h.Write(buf[:n])
		if err != nil {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	if !bytes.Equal(h.Sum(nil), sha256Sum(big)) {
		t.Fatal("8 MiB answer altered")
	}
	c.send("GET /close HTTP/1.1\r\nHost: files.localhost\r\n\r\n")
	resp, body = c.read("GET")
	if string(body) != "until close" || !resp.Close {
		t.Fatalf("close-delimited answer %q, close %v", body, resp.Close)
	}

	// 1 MiB: beyond the loop's inline limit, handed over and still right.
	huge := bytes.Repeat([]byte("y"), 1<<20)
	c2 := dialRaw(t, gw)
	c2.send("POST /echo HTTP/1.1\r\nHost: files.localhost\r\nContent-Length: " + strconv.Itoa(len(huge)) + "\r\n\r\n" + string(huge))
	if _, body := c2.read("POST"); string(body) != fmt.Sprintf("%x", sha256.Sum256(huge)) {
		t.Fatalf("1 MiB body arrived altered: %s", body)
	}
	if g.handovers.Load() != 1 {
		t.Fatalf("%d handovers, want 1 for the 1 MiB body", g.handovers.Load())
	}
	// Chunked request bodies and Expect go to fasthttp too.
	c3 := dialRaw(t, gw)
	c3.send("POST /echo HTTP/1.1\r\nHost: files.localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	if _, body := c3.read("POST"); string(body) != fmt.Sprintf("%x", sha256.Sum256([]byte("abc"))) {
		t.Fatalf("chunked request body arrived altered: %s", body)
	}
}

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// TestLoopSlowUpstream: an upstream that trickles its answer; the loop
// serves other clients meanwhile.
func TestLoopSlowUpstream(t *testing.T) {
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fast" {
			io.WriteString(w, "fast")
			return
		}
		w.Header().Set("Content-Length", "10")
		for i := range 10 {
			fmt.Fprint(w, i)
			w.(http.Flusher).Flush()
			time.Sleep(30 * time.Millisecond)
		}
	})
	g := loopGateway(t, Options{})
	g.SetEndpoints("orders", "v1", []string{up})
	gw := startGateway(t, g)
	slow := dialRaw(t, gw)
	slow.send("GET /slow HTTP/1.1\r\nHost: orders.localhost\r\n\r\n")
	fast := dialRaw(t, gw)
	start := time.Now()
	for range 20 {
		fast.send("GET /fast HTTP/1.1\r\nHost: orders.localhost\r\n\r\n")
		if _, b := fast.read("GET"); string(b) != "fast" {
			t.Fatalf("body %q", b)
		}
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("20 fast requests took %v next to a slow answer", d)
	}
	if _, b := slow.read("GET"); string(b) != "0123456789" {
		t.Fatalf("slow answer %q", b)
	}
}

// TestLoopRetriesOnUpstreamCrash: a GET whose endpoint dies is retried on
// another endpoint; a POST whose endpoint refuses connections too (no byte
// reached it); the dead endpoint is then ejected.
func TestLoopRetriesOnUpstreamCrash(t *testing.T) {
	good := startUpstream(t, "v1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// An endpoint that accepts and resets every connection.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	dead := freeAddr(t)
	g := loopGateway(t, Options{EjectAfter: 3})
	g.SetEndpoints("orders", "v1", []string{ln.Addr().String(), dead, good.addr})
	gw := startGateway(t, g)
	c := dialRaw(t, gw)
	for i := range 30 {
		c.send("GET /x HTTP/1.1\r\nHost: orders.localhost\r\n\r\n")
		if resp, body := c.read("GET"); resp.StatusCode != 200 || string(body) != "v1 /x " {
			t.Fatalf("GET %d: %d %q", i, resp.StatusCode, body)
		}
		c.send("POST /p HTTP/1.1\r\nHost: orders.localhost\r\nContent-Length: 1\r\n\r\nz")
		resp, body := c.read("POST")
		// A POST that reached the resetting endpoint is not retried.
		if resp.StatusCode != 200 && (resp.StatusCode != 502 || resp.Header.Get("X-Pave-Gateway-Error") != "upstream") {
			t.Fatalf("POST %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if g.loopRequests.Load() != 60 {
		t.Fatalf("loop served %d of 60", g.loopRequests.Load())
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestLoopHandsOverUpgrades: WebSocket and h2c connections reach the
// fasthttp and HTTP/2 servers with the bytes the loop already read.
func TestLoopHandsOverUpgrades(t *testing.T) {
	g := loopGateway(t, Options{})
	v1 := startUpstream(t, "v1")
	g.SetEndpoints("chat", "v1", []string{v1.addr})
	gw := startGateway(t, g)
	// A plain request first, then an upgrade on the same connection.
	conn, err := net.Dial("tcp", gw)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	io.WriteString(conn, "GET /a HTTP/1.1\r\nHost: chat.localhost\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	cfg, _ := websocket.NewConfig("ws://chat.localhost/ws", "http://chat.localhost/")
	ws, err := websocket.NewClient(cfg, &bufConn{Conn: conn, r: br})
	if err != nil {
		t.Fatalf("WebSocket after a plain request: %v", err)
	}
	if err := websocket.Message.Send(ws, "hi"); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := websocket.Message.Receive(ws, &got); err != nil || got != "v1:hi" {
		t.Fatalf("echo %q, %v", got, err)
	}
	if g.loopRequests.Load() != 1 || g.handovers.Load() != 1 {
		t.Fatalf("loop requests %d, handovers %d; want 1, 1", g.loopRequests.Load(), g.handovers.Load())
	}
	// h2c with prior knowledge.
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Protocols: &protocols}}
	req, _ := http.NewRequest("GET", "http://"+gw+"/rpc", nil)
	req.Host = "chat.localhost"
	r2, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if r2.ProtoMajor != 2 || !strings.HasPrefix(string(b), "v1 /rpc") {
		t.Fatalf("h2c answer %s %q", r2.Proto, b)
	}
	if g.handovers.Load() != 2 {
		t.Fatalf("handovers %d, want 2", g.handovers.Load())
	}
}

type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// TestLoopShutdownFinishesRequests: a request in flight when Serve's
// context ends still gets its answer.
func TestLoopShutdownFinishesRequests(t *testing.T) {
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		io.WriteString(w, "done")
	})
	g := loopGateway(t, Options{})
	g.SetEndpoints("orders", "v1", []string{up})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln) }()
	c := dialRaw(t, ln.Addr().String())
	c.send("GET / HTTP/1.1\r\nHost: orders.localhost\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	cancel()
	if _, b := c.read("GET"); string(b) != "done" {
		t.Fatalf("answer %q", b)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestLoopClientTimeouts: an idle keep-alive client is closed after
// IdleTimeout, a request that never completes after ClientTimeout.
func TestLoopClientTimeouts(t *testing.T) {
	g := loopGateway(t, Options{IdleTimeout: 150 * time.Millisecond, ClientTimeout: 150 * time.Millisecond})
	v1 := startUpstream(t, "v1")
	g.SetEndpoints("orders", "v1", []string{v1.addr})
	gw := startGateway(t, g)
	for _, first := range []string{"GET / HTTP/1.1\r\nHost: orders.localhost\r\n\r\n", "GET / HTTP/1.1\r\nHost: ord"} {
		c := dialRaw(t, gw)
		c.send(first)
		if strings.HasSuffix(first, "\r\n\r\n") {
			c.read("GET")
		}
		start := time.Now()
		if _, err := c.br.ReadByte(); err != io.EOF {
			t.Fatalf("%q: read %v, want EOF when the gateway closes", first, err)
		}
		if d := time.Since(start); d < 100*time.Millisecond || d > 2*time.Second {
			t.Fatalf("%q: closed after %v, want about 150ms", first, d)
		}
	}
}

// TestLoopSkipsPooledConnectionsTheUpstreamClosed: a keep-alive connection
// in the pool whose upstream has closed it, the close not yet handled by
// the loop (busy, as when a lost cluster's gateway goes), is not given a
// request: a POST written to it would fail once sent and could not be
// retried, though nothing reached the upstream.
func TestLoopSkipsPooledConnectionsTheUpstreamClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	g := loopGateway(t, Options{})
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(ep) })
	l := &loop{g: g, ep: ep, idle: map[*upstream][]*lconn{}, count: map[*upstream]int{}, addrs: map[*upstream]syscall.Sockaddr{}}
	u := &upstream{addr: ln.Addr().String()}

	// One pooled connection, then its upstream closes it; no event is
	// handled (the loop does not run).
	first, err := l.upstreamConn(u, true)
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	l.idle[u] = append(l.idle[u], first)
	peer.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !peerGone(uintptr(first.fd)) {
		if time.Now().After(deadline) {
			t.Fatal("the upstream's close never reached the pooled connection")
		}
		time.Sleep(10 * time.Millisecond)
	}
	next, err := l.upstreamConn(u, true) // as for a POST
	if err != nil {
		t.Fatal(err)
	}
	if next == first || next.reused {
		t.Fatal("the loop took the pooled connection its upstream had closed")
	}
	if l.conns[first.fd] == first {
		t.Error("the closed pooled connection is still registered")
	}
	// An idempotent request takes a pooled connection unchecked (a
	// failure on it is retried): the peek is paid only where it matters.
	l.idle[u] = append(l.idle[u], next)
	if again, err := l.upstreamConn(u, false); err != nil || again != next {
		t.Fatalf("an idempotent request did not get the pooled connection: %v", err)
	}
	if n := l.count[u]; n != 1 {
		t.Errorf("%d connections counted to the upstream, want 1 (the new one)", n)
	}
	l.closeUpstream(next)
}

// TestLoopShutdownServesRequestsAlreadyArrived: when the gateway stops, a
// keep-alive connection looks idle to the loop though a request has
// reached its socket (an edge sent it on its pooled connection just
// then). Closing it would reset the request unanswered, leaving the edge
// unsure whether it was served, and a POST may not be retried then; it is
// served instead, with Connection: close.
func TestLoopShutdownServesRequestsAlreadyArrived(t *testing.T) {
	up := startHandler(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "paid %s", b)
	})
	g := loopGateway(t, Options{})
	g.SetEndpoints("orders", "v1", []string{up})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	lfd, err := syscall.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	// The loop is driven by hand until the stop, so the request's arrival
	// is not an event it has handled.
	l, err := g.newLoop(lfd, newConnQueue(ln.Addr()), newConnQueue(ln.Addr()), false)
	if err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, ln.Addr().String())
	deadline := time.Now().Add(10 * time.Second)
	for l.nclients == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the loop accepted no connection")
		}
		l.now = time.Now().UnixNano()
		l.accept()
		time.Sleep(5 * time.Millisecond)
	}
	var sc *lconn
	for _, x := range l.conns {
		if x != nil && x.role == roleClient {
			sc = x
		}
	}
	c.send("POST /pay HTTP/1.1\r\nHost: orders.localhost\r\nContent-Length: 3\r\n\r\n120")
	for !peerGone(uintptr(sc.fd)) {
		if time.Now().After(deadline) {
			t.Fatal("the request never reached the gateway's socket")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if sc.state != csIdle || len(sc.in) != 0 {
		t.Fatal("the loop read the request before the stop; the test needs it unread")
	}
	l.now = time.Now().UnixNano()
	l.beginStop()
	go l.run()
	resp, body := c.read("POST")
	if resp.StatusCode != 200 || string(body) != "paid 120" || !resp.Close {
		t.Fatalf("answer %d %q (close %v), want 200 \"paid 120\" and the connection closed", resp.StatusCode, body, resp.Close)
	}
	select {
	case <-l.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the loop did not finish after its last client")
	}
}

// BenchmarkPeerGone is what the loop adds to a request on a pooled
// upstream connection: one peek at the idle socket before the write.
func BenchmarkPeerGone(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			_, _ = io.Copy(io.Discard, c)
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		gone := false
		_ = raw.Control(func(fd uintptr) { gone = peerGone(fd) })
		if gone {
			b.Fatal("an open idle connection looked closed")
		}
	}
}
