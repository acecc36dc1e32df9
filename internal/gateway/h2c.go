package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The h2c path: HTTP/2 with prior knowledge (gRPC's cleartext mode),
// served by net/http and proxied stream by stream with
// httputil.ReverseProxy to h2c upstreams. Routing, retries, the edge's
// retry elsewhere, forwarding headers, error answers and what is counted
// are the core's (core.go), as on the other two paths.

// h2Exchange is one stream's state, shared by the handler, the rewrite,
// the transport's attempts and the error handler.
type h2Exchange struct {
	rt         routing
	in         requestIn
	idempotent bool
	sent       bool         // some attempt may have reached an instance
	body       *attemptBody // the stream's request body (nil: none)
	tooLarge   bool         // the client's body is over the limit: not the version's failure
	status     int
	reported   []byte
	err        error
}

type h2ExchangeKey struct{}

// h2Transport makes the attempts of one stream: the endpoint the core
// picks, another on a failure the core retries, another cluster for an
// edge's marked 502/503.
type h2Transport struct {
	g    *Gateway
	base http.RoundTripper
}

func (t h2Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	x := req.Context().Value(h2ExchangeKey{}).(*h2Exchange)
	g := t.g
	now := x.in.now
	for attempt := 0; ; attempt++ {
		u := g.pick(&x.rt, attempt, now)
		if u == nil {
			return nil, errNoBackend{"no ready instance"}
		}
		if x.rt.b.cluster != "" {
			req.Header.Set(string(hdrEdge), string(g.edgeValue))
		}
		req.URL.Host = u.addr
		body := x.body
		resp, err := t.base.RoundTrip(req)
		// An attempt is repeated only while no byte of the request body
		// was taken, so a streamed body is never sent twice in part.
		untouched := body == nil || body.read == 0
		if err == nil {
			g.succeeded(u, resp.StatusCode)
			if mark := []byte(resp.Header.Get(string(hdrGatewayError))); untouched && g.retryElsewhere(&x.rt, resp.StatusCode, mark, x.idempotent, attempt, now) {
				x.sent = x.sent || !unsentMark(mark)
				resp.Body.Close()
				req = req.Clone(req.Context())
				if body != nil {
					x.body = &attemptBody{rc: body.rc}
					req.Body = x.body
				}
				continue
			}
			return resp, nil
		}
		g.failed(u)
		dial, err := h2Failure(err)
		x.sent = x.sent || !dial || !untouched
		if !untouched || !g.retryAfterFailure(&x.rt, err, dial, x.idempotent, false, attempt, now) {
			return nil, err
		}
		req = req.Clone(req.Context())
		if body != nil {
			x.body = &attemptBody{rc: body.rc}
			req.Body = x.body
		}
	}
}

// h2Failure classifies a failed h2c attempt in the core's terms: a
// connection whose HTTP/2 handshake failed carried no request (as a refused
// dial), and a connection lost before the answer is a broken connection.
// net/http's HTTP/2 errors are not exported, hence their text.
func h2Failure(err error) (dial bool, classified error) {
	msg := err.Error()
	switch {
	case isDialFailure(err):
		return true, err
	case strings.Contains(msg, "http2: client conn could not be established"):
		return true, fmt.Errorf("%w (%v)", errConnClosed, err)
	case strings.Contains(msg, "http2: client connection lost"),
		strings.Contains(msg, "http2: server sent GOAWAY and closed the connection"),
		strings.Contains(msg, "http2: client connection force closed"):
		return false, fmt.Errorf("%w (%v)", errConnClosed, err)
	}
	return false, err
}

// attemptBody is the request body as one attempt sees it: the transport
// closes it when the attempt fails, which must not close the stream's body
// while another attempt may still send it (the handler closes that).
type attemptBody struct {
	rc   io.ReadCloser
	read int
}

func (b *attemptBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.read += n
	return n, err
}

func (b *attemptBody) Close() error { return nil }

// h2Handler proxies h2c requests, stream by stream, to h2c upstreams.
func (g *Gateway) h2Handler() http.Handler {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	base := &http.Transport{
		Protocols:       &protocols,
		DialContext:     (&net.Dialer{Timeout: g.opts.DialTimeout}).DialContext,
		IdleConnTimeout: 90 * time.Second,
	}
	rp := &httputil.ReverseProxy{
		Transport: h2Transport{g: g, base: base},
		Rewrite: func(pr *httputil.ProxyRequest) {
			x := pr.In.Context().Value(h2ExchangeKey{}).(*h2Exchange)
			pr.Out.URL.Scheme = "http"
			pr.Out.Host = pr.In.Host
			// Rewrite starts without X-Forwarded-*: append the client as
			// the other paths do (SetXForwarded would replace the chain).
			if x.in.addr.IsValid() {
				prev := strings.Join(pr.In.Header.Values("X-Forwarded-For"), ", ")
				pr.Out.Header.Set("X-Forwarded-For", string(appendForwardedFor(nil, []byte(prev), x.in.addr)))
			}
		},
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			x := resp.Request.Context().Value(h2ExchangeKey{}).(*h2Exchange)
			x.status = resp.StatusCode
			if v := resp.Header.Get(string(hdrRoute)); v != "" {
				x.reported = []byte(v)
			}
			resp.Header.Del(string(hdrRoute))
			if x.rt.b.cluster != "" {
				resp.Header.Set(string(hdrRespCluster), x.rt.b.cluster)
			} else {
				resp.Header.Set(string(hdrRespVersion), x.rt.b.name)
				resp.Header.Del(string(hdrGatewayError)) // only a gateway marks its answers
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			x := r.Context().Value(h2ExchangeKey{}).(*h2Exchange)
			x.err = err
			if mb := new(http.MaxBytesError); errors.As(err, &mb) {
				x.tooLarge = true
				http.Error(w, fmt.Sprintf("pave gateway: request body over the limit of %d bytes", mb.Limit), http.StatusRequestEntityTooLarge)
				return
			}
			var ne net.Error
			code, body := failureAnswer(&x.rt, err, errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded))
			if errors.As(err, new(errNoBackend)) {
				code, body = http.StatusServiceUnavailable, errorBody(err)
			}
			w.Header().Set(string(hdrGatewayError), string(failureMark(x.sent)))
			http.Error(w, strings.TrimSuffix(body, "\n"), code)
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		x := &h2Exchange{in: requestIn{host: []byte(r.Host), path: []byte(r.URL.Path), method: []byte(r.Method),
			version: []byte(r.Header.Get(g.opts.VersionHeader)), token: []byte(r.Header.Get(g.opts.TesterHeader)),
			edge: r.Header.Get(string(hdrEdge)) != "", now: start.UnixNano()}}
		if g.opts.StickyHeader != "" {
			x.in.sticky = []byte(r.Header.Get(g.opts.StickyHeader))
		}
		if len(x.in.sticky) == 0 && g.opts.StickyCookie != "" {
			if c, err := r.Cookie(g.opts.StickyCookie); err == nil {
				x.in.sticky = []byte(c.Value)
			}
		}
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			x.in.addr = ap.Addr().Unmap()
		}
		o := outcome{method: x.in.method}
		if g.accessCh != nil {
			o.caller = callerOf([]byte(r.Header.Get("Baggage")), []byte(r.Header.Get(g.opts.CallerHeader)))
			o.merchant = boundField([]byte(r.Header.Get(g.opts.MerchantHeader)))
		}
		rt, code, err := g.route(g.table.Load(), &x.in)
		if err != nil {
			if rt.s != nil {
				w.Header().Set(string(hdrGatewayError), string(markNoBackend))
			}
			http.Error(w, strings.TrimSuffix(errorBody(err), "\n"), code)
			if rt.s != nil {
				o.status = code
				g.finish(&rt, start, &o)
			}
			return
		}
		x.rt = rt
		x.idempotent = isIdempotent(x.in.method)
		if r.ContentLength > int64(g.opts.MaxBodyBytes) {
			http.Error(w, fmt.Sprintf("pave gateway: request body of %d bytes is over the limit of %d", r.ContentLength, g.opts.MaxBodyBytes), http.StatusRequestEntityTooLarge)
			o.status = http.StatusRequestEntityTooLarge
			x.rt.b = nil // the client's fault, not the version's
			g.finish(&x.rt, start, &o)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			defer r.Body.Close()
			x.body = &attemptBody{rc: http.MaxBytesReader(w, r.Body, int64(g.opts.MaxBodyBytes))}
			r.Body = x.body
		}
		var tc traceContext
		tc.fromTraceparent([]byte(r.Header.Get("traceparent")))
		o.tc = &tc
		r.Header.Set("traceparent", string(tc.appendTraceparent(nil)))
		if !rt.pinHonoured {
			r.Header.Del(g.opts.VersionHeader)
		}
		if rt.b.cluster == "" {
			r.Header.Del(g.opts.TesterHeader)
		}
		m := g.mirrorFor(&x.rt, x.in.method, x.in.path, int(max(r.ContentLength, 0)))
		var kept *mirrorCopy
		switch {
		case m == nil:
		case x.body == nil || r.ContentLength == 0: // the proxy sends no body then
			m.enqueue(x.in.method, x.rt.route, x.in.path, &tc, h2Raw(r))
		default:
			// The body streams to stable as it arrives; a copy of it is
			// kept on the way and mirrored once it has ended (below).
			kept = &mirrorCopy{rc: x.body.rc, limit: m.cfg.MaxBodyBytes, head: h2Raw(r)}
			x.body.rc = kept
		}
		sw := &statusWriter{ResponseWriter: w}
		rp.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), h2ExchangeKey{}, x)))
		if kept != nil {
			kept.mirror(m, x.in.method, x.rt.route, x.in.path, &tc)
		}
		o.status = sw.status
		if x.err == nil {
			o.statsStatus = x.status
			o.reported = x.reported
		}
		o.bytes = sw.bytes
		if x.tooLarge {
			x.rt.b = nil // the client's fault, not the version's
		}
		g.finish(&x.rt, start, &o)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status, bytes int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += n
	return n, err
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// h2Raw writes the head of an h2c request as HTTP/1.1 for the mirror,
// without Content-Length (a bodyless request as it is).
func h2Raw(r *http.Request) []byte {
	var b bytes.Buffer
	b.WriteString(r.Method + " " + r.URL.RequestURI() + " HTTP/1.1\r\nHost: " + r.Host + "\r\n")
	_ = r.Header.WriteSubset(&b, map[string]bool{"Host": true, "Connection": true, "Content-Length": true, "Transfer-Encoding": true})
	b.WriteString("\r\n")
	return b.Bytes()
}

// mirrorCopy keeps an h2c request body, up to the mirror's limit, as the
// proxy streams it to stable. HTTP/2 bodies are streamed, not read ahead
// (reading one whole before forwarding it would delay the user's
// request), so the copy is queued once the body has ended: after the
// user's answer, like the other paths' copies never before it. The
// transport reads the body on its own goroutine, hence the lock.
type mirrorCopy struct {
	rc    io.ReadCloser
	limit int
	head  []byte // the request's HTTP/1.1 head, without Content-Length

	mu   sync.Mutex
	body []byte
	over bool // more than limit bytes: not mirrored, counted
	done bool // read to its end
}

func (c *mirrorCopy) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	c.mu.Lock()
	if !c.over {
		if len(c.body)+n > c.limit {
			c.over, c.body = true, nil
		} else {
			c.body = append(c.body, p[:n]...)
		}
	}
	if err == io.EOF {
		c.done = true
	}
	c.mu.Unlock()
	return n, err
}

func (c *mirrorCopy) Close() error { return c.rc.Close() }

// mirror queues the copy when the whole body was seen within the limit;
// a body over the limit is counted as on HTTP/1, and one that never
// ended (the client went away, the version answered without reading it)
// is counted as a copy that could not be made.
func (c *mirrorCopy) mirror(m *mirrorer, method, route, path []byte, tc *traceContext) {
	c.mu.Lock()
	over, done, body := c.over, c.done, c.body
	c.mu.Unlock()
	switch {
	case over:
		m.tooLarge()
	case !done:
		m.rec.Counted(false, true, false, false)
	default:
		raw := append([]byte(nil), c.head[:len(c.head)-2]...) // before the blank line
		raw = append(raw, "Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"...)
		m.enqueue(method, route, path, tc, append(raw, body...))
	}
}
