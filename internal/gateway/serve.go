package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// serveNoEventLoop forces Options.NoEventLoop (the tests run the package
// once more with it).
var serveNoEventLoop bool

// h2Preface starts every HTTP/2 connection with prior knowledge (h2c);
// no HTTP/1 method starts with "PRI".
const h2Preface = "PRI"

// Serve serves the gateway on ln until ctx ends, then stops accepting,
// lets requests in flight finish (up to 10 s) and returns. HTTP/1.x goes
// to the fast path; h2c connections (prior knowledge, as gRPC uses) are
// recognised by their preface and passed through as HTTP/2 to the
// upstream, which must speak h2c too.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	h1 := newConnQueue(ln.Addr())
	h2 := newConnQueue(ln.Addr())
	fs := &fasthttp.Server{
		Handler:               g.handle,
		Name:                  "pave",
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		// ReadTimeout bounds the head; once it is in, the body gets
		// ClientTimeout (HeaderReceived).
		ReadTimeout:  g.opts.ReadHeaderTimeout,
		WriteTimeout: g.opts.WriteTimeout,
		HeaderReceived: func(*fasthttp.RequestHeader) fasthttp.RequestConfig {
			return fasthttp.RequestConfig{ReadTimeout: g.opts.ClientTimeout}
		},
		ErrorHandler:                  g.clientError,
		IdleTimeout:                   g.opts.IdleTimeout,
		MaxRequestBodySize:            g.opts.MaxBodyBytes,
		DisablePreParseMultipartForm:  true,
		DisableHeaderNamesNormalizing: false,
		ReadBufferSize:                8 << 10,
		CloseOnShutdown:               true,
		Logger:                        fasthttpLogger{g},
	}
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	hs := &http.Server{Handler: g.h2Handler(), Protocols: &protocols, ReadHeaderTimeout: g.opts.ReadHeaderTimeout, IdleTimeout: g.opts.IdleTimeout,
		MaxHeaderBytes: maxHeadBytes}

	errc := make(chan error, 3)
	go func() { errc <- fs.Serve(h1) }()
	go func() { errc <- hs.Serve(h2) }()
	var loops []*loop
	if loopSupported && !g.opts.NoEventLoop && !serveNoEventLoop {
		var err error
		if loops, err = g.startLoops(ln, h1, h2); err != nil {
			g.opts.Log.Warn("gateway: event loop unavailable, serving every connection with a goroutine", "err", err)
		}
	}
	if loops == nil {
		go func() { errc <- g.accept(ln, h1, h2) }()
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	ln.Close()
	for _, l := range loops {
		l.stop()
	}
	h1.Close()
	h2.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, l := range loops {
		select {
		case <-l.done:
		case <-sctx.Done():
		}
	}
	err = errors.Join(err, fs.ShutdownWithContext(sctx), hs.Shutdown(sctx))
	if errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// clientError answers a request the fasthttp server could not read.
func (g *Gateway) clientError(ctx *fasthttp.RequestCtx, err error) {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		ctx.Error(fmt.Sprintf("pave gateway: request body over the limit of %d bytes\n", g.opts.MaxBodyBytes), fasthttp.StatusRequestEntityTooLarge)
	case errors.As(err, &ne) && ne.Timeout():
		ctx.Error("pave gateway: request not received in time\n", fasthttp.StatusRequestTimeout)
	default:
		ctx.Error("pave gateway: malformed request\n", fasthttp.StatusBadRequest)
	}
}

type fasthttpLogger struct{ g *Gateway }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.g.opts.Log.Debug("gateway: " + fmt.Sprintf(format, args...))
}

// accept hands each connection to the HTTP/1 or the h2c server after
// reading its first bytes, in a goroutine of its own so a slow client
// cannot hold up the accept loop.
func (g *Gateway) accept(ln net.Listener, h1, h2 *connQueue) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("gateway accept: %w", err)
		}
		delay = 0
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(g.opts.ReadHeaderTimeout))
			var first [len(h2Preface)]byte
			if _, err := io.ReadFull(c, first[:]); err != nil {
				c.Close()
				return
			}
			_ = c.SetReadDeadline(time.Time{})
			pc := &peekedConn{Conn: newLazyConn(c), pre: first[:]}
			q := h1
			if string(first[:]) == h2Preface {
				q = h2
			}
			if !q.put(pc) {
				c.Close()
			}
		}()
	}
}

// peekedConn replays the bytes read to classify a connection.
type peekedConn struct {
	net.Conn
	pre []byte
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// connQueue is a net.Listener fed with classified connections.
type connQueue struct {
	addr   net.Addr
	ch     chan net.Conn
	once   sync.Once
	closed chan struct{}
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (q *connQueue) put(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.closed:
		return false
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.closed:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.closed) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }
