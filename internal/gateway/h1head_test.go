package gateway

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httputil"
	"testing"
)

var testNames = reqNames{version: []byte("X-Pave-Version"), sticky: []byte("X-User-Id"), caller: []byte("X-Pave-Caller"), merchant: []byte("X-Merchant-Id")}

func TestParseRequestHead(t *testing.T) {
	for _, tc := range []struct {
		in   string
		slow bool
		n    int
		host string
		cl   int
	}{
		{in: "GET / HTTP/1.1\r\nHost: a.localhost\r\n\r\n", n: 37, host: "a.localhost"},
		{in: "GET / HTTP/1.1\r\nHost: a.localhost\r\n"},
		{in: "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc", n: 72, host: "a", cl: 3},
		{in: "GET / HTTP/1.0\r\nHost: a\r\n\r\n", slow: true},
		{in: "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", slow: true},
		{in: "GET /a/../b HTTP/1.1\r\nHost: a\r\n\r\n", slow: true},
		{in: "GET /%61 HTTP/1.1\r\nHost: a\r\n\r\n", slow: true},
		{in: "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", slow: true},
		{in: "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", slow: true},
		{in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", slow: true},
		{in: "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", slow: true},
		{in: "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", slow: true},
		{in: "GET / HTTP/1.1\r\n\r\n", slow: true},
		{in: "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", slow: true},
	} {
		var h reqHead
		n, err := parseRequestHead([]byte(tc.in), &testNames, &h)
		if tc.slow {
			if err == nil {
				t.Errorf("%q: not handed over", tc.in)
			}
			continue
		}
		if err != nil || n != tc.n {
			t.Errorf("%q: n %d err %v, want %d", tc.in, n, err, tc.n)
			continue
		}
		if n > 0 && (string(h.host) != tc.host || h.contentLength != tc.cl) {
			t.Errorf("%q: host %q content length %d", tc.in, h.host, h.contentLength)
		}
	}
}

func TestAppendKeptDropsHopHeaders(t *testing.T) {
	in := "GET /x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nX-A: 1\r\nTE: trailers\r\ntraceparent: bad\r\nX-B: 2\r\n\r\n"
	var h reqHead
	n, err := parseRequestHead([]byte(in), &testNames, &h)
	if err != nil || n != len(in) {
		t.Fatal(n, err)
	}
	got := string(appendKept(nil, []byte(in), 0, n-2, h.drops[:h.ndrop]))
	if want := "GET /x HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-B: 2\r\n"; got != want {
		t.Fatalf("kept %q, want %q", got, want)
	}
}

func TestCookieValue(t *testing.T) {
	if v := cookieValue([]byte(`a=1; merchant_id="m-7"; b=2`), []byte("merchant_id")); string(v) != "m-7" {
		t.Fatalf("%q", v)
	}
	if v := cookieValue([]byte(`a=1`), []byte("merchant_id")); v != nil {
		t.Fatalf("%q", v)
	}
}

var requestSeeds = []string{
	"GET / HTTP/1.1\r\nHost: orders.localhost\r\n\r\n",
	"POST /pay?x=1 HTTP/1.1\r\nHost: orders.localhost\r\nContent-Length: 5\r\nX-Pave-Version: v2\r\nCookie: a=b; merchant_id=m1\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\nhello",
	"GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\nKeep-Alive: 5\r\nX-Forwarded-For: 10.0.0.1\r\nX-Pave-Edge: 1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n\tfolded\r\n\r\n",
}

// FuzzParseRequestHead: the loop's parser never panics, and whenever
// net/http also accepts a head the loop accepts, both frame it alike
// (method, host, body length), before and after the loop rewrites it, so
// the loop and its upstream cannot disagree on where a request ends.
func FuzzParseRequestHead(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var h reqHead
		n, err := parseRequestHead(in, &testNames, &h)
		if err != nil {
			return
		}
		if n == 0 {
			if bytes.Contains(in, crlfcrlf) {
				t.Fatalf("%q: complete head reported incomplete", in)
			}
			return
		}
		if n > len(in) || !bytes.Equal(in[n-4:n], crlfcrlf) || len(h.host) == 0 || h.target[0] != '/' ||
			!bytes.HasPrefix(h.target, h.path) || h.contentLength < 0 || h.contentLength > maxInlineBytes {
			t.Fatalf("%q: inconsistent head %+v", in, h)
		}
		prev := int32(0)
		for _, d := range h.drops[:h.ndrop] {
			if d.start < prev || d.end <= d.start || int(d.end) > n {
				t.Fatalf("%q: bad drop spans %v", in, h.drops[:h.ndrop])
			}
			prev = d.end
		}
		head := in[:n]
		rewritten := append(appendKept(nil, in, 0, n-2, h.drops[:h.ndrop]), "X-Added: 1\r\n\r\n"...)
		for _, variant := range [][]byte{head, rewritten} {
			req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(variant)))
			if err != nil {
				continue
			}
			if req.Method != string(h.method) || req.ContentLength != int64(h.contentLength) && !(req.ContentLength == -1 && h.contentLength == 0) ||
				len(req.TransferEncoding) > 0 {
				t.Fatalf("%q: net/http frames it as %s CL=%d TE=%v, the loop as %s CL=%d", variant, req.Method, req.ContentLength, req.TransferEncoding, h.method, h.contentLength)
			}
		}
	})
}

// FuzzParseResponseHead: never panics, and agrees with net/http on how
// the body is framed when both accept the head.
func FuzzParseResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nuntil close",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 502 Bad Gateway\r\nX-Pave-Gateway-Error: upstream\r\nConnection: close\r\nX-Pave-Version: v9\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var h respHead
		n, err := parseResponseHead(in, hdrRespVersion, false, &h)
		if err != nil || n == 0 {
			return
		}
		if n > len(in) || h.status < 100 || h.status > 999 {
			t.Fatalf("%q: inconsistent head %+v", in, h)
		}
		if h.gatewayError != nil {
			t.Fatalf("%q: a service's X-Pave-Gateway-Error was taken as a gateway's mark", in)
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(in[:n])), &http.Request{Method: "GET"})
		if err != nil || resp.StatusCode < 200 || resp.StatusCode == 204 || resp.StatusCode == 304 {
			return
		}
		chunked := len(resp.TransferEncoding) > 0
		if chunked != h.chunked || !chunked && resp.ContentLength != h.contentLength {
			t.Fatalf("%q: net/http frames chunked=%v CL=%d, the loop chunked=%v CL=%d", in, chunked, resp.ContentLength, h.chunked, h.contentLength)
		}
	})
}

// FuzzChunkedBody: feeding a chunked body whole or byte by byte gives the
// same end, and an end the loop accepts decodes with net/http.
func FuzzChunkedBody(f *testing.F) {
	for _, s := range []string{
		"3\r\nabc\r\n0\r\n\r\n", "a;ext=1\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nrest", "0\r\n\r\n", "zz\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var whole chunkedBody
		k, done, err := whole.feed(in)
		var split chunkedBody
		k2, done2, failed2 := 0, false, false
		for i := range in {
			n, d, e := split.feed(in[i : i+1])
			k2 += n
			if e != nil {
				failed2 = true
				break
			}
			if d {
				done2 = true
				break
			}
		}
		if (err != nil) != failed2 || done != done2 || err == nil && k != k2 {
			t.Fatalf("%q: whole (%d, %v, %v) vs byte by byte (%d, %v, %v)", in, k, done, err, k2, done2, failed2)
		}
		if done {
			if _, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(in[:k]))); err != nil {
				t.Fatalf("%q: the loop accepts a body net/http rejects: %v", in[:k], err)
			}
		}
	})
}
