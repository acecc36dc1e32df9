package gateway

import (
	"bytes"
	"errors"
)

// The event loop (loop_linux.go) parses HTTP/1.1 heads itself, strictly:
// it handles the common well-formed request and hands anything unusual
// (HTTP/1.0, chunked or oversized bodies, Expect, Upgrade, obsolete line
// folding, absolute-form or non-normalised paths, duplicated framing
// headers...) over to the fasthttp server, which then serves that
// connection as before. So the loop never has to decide an ambiguous case
// differently from the goroutine-per-connection path.

// errSlowPath asks to hand the connection over to the fasthttp server.
var errSlowPath = errors.New("gateway: request needs the general HTTP/1 path")

// errBadResponse is an upstream answer the loop cannot frame.
var errBadResponse = errors.New("malformed response head from upstream")

const (
	maxHeadBytes = 16 << 10 // larger request heads go to the slow path
	maxDrops     = 8
)

var crlfcrlf = []byte("\r\n\r\n")

// span is a header line [start, end) within a head, its CRLF included.
type span struct{ start, end int32 }

// reqNames are the configurable header names the loop looks for.
type reqNames struct {
	version, sticky, caller, merchant, tester []byte
}

// reqHead is what the loop needs of one request head. Slices point into
// the connection's buffer.
type reqHead struct {
	headLen       int
	method        []byte
	target        []byte
	path          []byte
	host          []byte
	version       []byte
	sticky        []byte
	cookie        []byte
	traceparent   []byte
	baggage       []byte
	caller        []byte
	merchant      []byte
	xff           []byte
	edge          bool
	edgeLine      span // the X-Pave-Edge line, dropped when the gateway sets it
	versionLine   span // the version header's line, dropped unless honoured
	tester        []byte
	testerLine    span // the tester credential's line, dropped unless sent to an edge's cluster
	contentLength int
	close         bool
	drops         [maxDrops]span // lines not forwarded
	ndrop         int
}

func (h *reqHead) drop(s span) error {
	if h.ndrop == maxDrops {
		return errSlowPath
	}
	h.drops[h.ndrop] = s
	h.ndrop++
	return nil
}

// tokenChar reports an RFC 9110 tchar.
func tokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '!' || c == '#' || c == '$' || c == '%' || c == '&' || c == '\'' || c == '*' ||
		c == '+' || c == '-' || c == '.' || c == '^' || c == '_' || c == '`' || c == '|' || c == '~'
}

// fieldValue validates and trims a header value: visible ASCII, obs-text
// and inner spaces or tabs only.
func fieldValue(v []byte) ([]byte, bool) {
	for _, c := range v {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return nil, false
		}
	}
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v, true
}

// parseDecimal parses a Content-Length: digits only, at most 18 of them.
func parseDecimal(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// headerLines calls fn for each header line of a head whose first line
// ends at off; fn gets the name, the raw value and the line's span.
func headerLines(b []byte, off, headLen int, fn func(name, value []byte, s span) error) error {
	for off < headLen-2 {
		end := bytes.IndexByte(b[off:headLen], '\n')
		if end < 1 || b[off+end-1] != '\r' {
			return errSlowPath
		}
		line := b[off : off+end-1]
		s := span{int32(off), int32(off + end + 1)}
		off += end + 1
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return errSlowPath
		}
		name := line[:colon]
		for _, c := range name {
			if !tokenChar(c) {
				return errSlowPath
			}
		}
		if err := fn(name, line[colon+1:], s); err != nil {
			return err
		}
	}
	return nil
}

// parseRequestHead parses the request head at the start of b. It returns
// 0 and no error while the head is incomplete, the head's length once it
// is complete, and errSlowPath for anything the loop leaves to fasthttp.
func parseRequestHead(b []byte, names *reqNames, h *reqHead) (int, error) {
	end := bytes.Index(b, crlfcrlf)
	if end < 0 {
		if len(b) >= maxHeadBytes {
			return 0, errSlowPath
		}
		return 0, nil
	}
	*h = reqHead{headLen: end + 4}
	if h.headLen > maxHeadBytes {
		return 0, errSlowPath
	}
	// Request line: METHOD SP origin-form SP HTTP/1.1 CRLF.
	lineEnd := bytes.IndexByte(b[:h.headLen], '\n')
	if lineEnd < 1 || b[lineEnd-1] != '\r' {
		return 0, errSlowPath
	}
	line := b[:lineEnd-1]
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || sp > 16 {
		return 0, errSlowPath
	}
	h.method = line[:sp]
	for _, c := range h.method {
		if c < 'A' || c > 'Z' {
			return 0, errSlowPath
		}
	}
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 || string(rest[sp+1:]) != "HTTP/1.1" {
		return 0, errSlowPath
	}
	h.target = rest[:sp]
	if h.target[0] != '/' {
		return 0, errSlowPath
	}
	for _, c := range h.target {
		if c <= 0x20 || c >= 0x7f || c == '#' {
			return 0, errSlowPath
		}
	}
	h.path = h.target
	if q := bytes.IndexByte(h.path, '?'); q >= 0 {
		h.path = h.path[:q]
	}
	// fasthttp routes on the decoded, normalised path: leave every path it
	// would change to it, so both paths route a request alike.
	if bytes.IndexByte(h.path, '%') >= 0 || bytes.IndexByte(h.path, '\\') >= 0 ||
		bytes.Contains(h.path, []byte("//")) || bytes.Contains(h.path, []byte("/.")) {
		return 0, errSlowPath
	}
	h.contentLength = 0
	seenCL := false
	err := headerLines(b, lineEnd+1, h.headLen, func(name, raw []byte, s span) error {
		v, ok := fieldValue(raw)
		if !ok {
			return errSlowPath
		}
		switch {
		case bytes.EqualFold(name, []byte("host")):
			if h.host != nil || len(v) == 0 {
				return errSlowPath
			}
			h.host = v
		case bytes.EqualFold(name, []byte("content-length")):
			n, ok := parseDecimal(v)
			if seenCL || !ok || n > maxInlineBytes {
				return errSlowPath
			}
			seenCL = true
			h.contentLength = int(n)
		case bytes.EqualFold(name, []byte("connection")):
			for tok := range bytes.SplitSeq(v, []byte(",")) {
				tok = bytes.TrimSpace(tok)
				switch {
				case bytes.EqualFold(tok, []byte("close")):
					h.close = true
				case bytes.EqualFold(tok, []byte("keep-alive")), len(tok) == 0:
				default:
					return errSlowPath // upgrade, or names of hop-by-hop headers
				}
			}
			return h.drop(s)
		case bytes.EqualFold(name, []byte("transfer-encoding")), bytes.EqualFold(name, []byte("upgrade")),
			bytes.EqualFold(name, []byte("expect")), bytes.EqualFold(name, []byte("http2-settings")):
			return errSlowPath
		case bytes.EqualFold(name, []byte("keep-alive")), bytes.EqualFold(name, []byte("proxy-connection")),
			bytes.EqualFold(name, []byte("proxy-authenticate")), bytes.EqualFold(name, []byte("te")),
			bytes.EqualFold(name, []byte("trailer")):
			return h.drop(s)
		case bytes.EqualFold(name, hdrTraceparent):
			if h.traceparent == nil {
				h.traceparent = v
			}
			return h.drop(s)
		case bytes.EqualFold(name, hdrXFF):
			if h.xff != nil {
				return errSlowPath
			}
			h.xff = v
			return h.drop(s)
		case bytes.EqualFold(name, hdrEdge):
			if h.edgeLine.end != 0 {
				return errSlowPath
			}
			h.edge = len(v) > 0
			h.edgeLine = s
		case bytes.EqualFold(name, []byte("cookie")):
			if h.cookie != nil {
				return errSlowPath
			}
			h.cookie = v
		case bytes.EqualFold(name, hdrBaggage):
			if h.baggage == nil {
				h.baggage = v
			}
		}
		if bytes.EqualFold(name, names.version) {
			if h.version != nil {
				return errSlowPath
			}
			h.version = v
			h.versionLine = s
			return nil
		}
		if bytes.EqualFold(name, names.tester) {
			if h.tester != nil {
				return errSlowPath
			}
			h.tester = v
			h.testerLine = s
			return nil
		}
		if h.sticky == nil && len(names.sticky) > 0 && bytes.EqualFold(name, names.sticky) {
			h.sticky = v
		}
		if h.caller == nil && bytes.EqualFold(name, names.caller) {
			h.caller = v
		}
		if h.merchant == nil && bytes.EqualFold(name, names.merchant) {
			h.merchant = v
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if h.host == nil {
		return 0, errSlowPath
	}
	return h.headLen, nil
}

// cookieValue returns the value of the cookie named name in a Cookie
// header value, or nil.
func cookieValue(header, name []byte) []byte {
	for len(header) > 0 {
		var pair []byte
		if i := bytes.IndexByte(header, ';'); i >= 0 {
			pair, header = header[:i], header[i+1:]
		} else {
			pair, header = header, nil
		}
		k, v, ok := bytes.Cut(bytes.TrimSpace(pair), []byte("="))
		if ok && bytes.Equal(k, name) {
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v
		}
	}
	return nil
}

// respHead is what the loop needs of one response head.
type respHead struct {
	headLen       int
	status        int
	contentLength int64 // -1: none
	chunked       bool
	close         bool   // the upstream closes the connection after it
	gatewayError  []byte // X-Pave-Gateway-Error's value (points into the head)
	route         []byte // X-Pave-Route, the template the service matched (dropped)
	drops         [maxDrops]span
	ndrop         int
}

// parseResponseHead parses the response head at the start of b (0 and no
// error while incomplete). own is the response header the gateway sets
// itself (X-Pave-Version or X-Pave-Cluster): the upstream's is dropped.
// gatewayUpstream says the upstream is a cluster's gateway, whose
// X-Pave-Gateway-Error marks its own answers; a service's is dropped, as
// an edge would otherwise repeat a POST on the service's word.
func parseResponseHead(b []byte, own []byte, gatewayUpstream bool, h *respHead) (int, error) {
	end := bytes.Index(b, crlfcrlf)
	if end < 0 {
		if len(b) >= maxHeadBytes {
			return 0, errBadResponse
		}
		return 0, nil
	}
	*h = respHead{headLen: end + 4, contentLength: -1}
	lineEnd := bytes.IndexByte(b[:h.headLen], '\n')
	if lineEnd < 13 || b[lineEnd-1] != '\r' {
		return 0, errBadResponse
	}
	line := b[:lineEnd-1]
	switch string(line[:9]) {
	case "HTTP/1.1 ":
	case "HTTP/1.0 ":
		h.close = true
	default:
		return 0, errBadResponse
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, errBadResponse
		}
		h.status = h.status*10 + int(c-'0')
	}
	if len(line) > 12 && line[12] != ' ' || h.status < 100 {
		return 0, errBadResponse
	}
	var clLine span
	err := headerLines(b, lineEnd+1, h.headLen, func(name, raw []byte, s span) error {
		v, ok := fieldValue(raw)
		if !ok {
			return errBadResponse
		}
		switch {
		case bytes.EqualFold(name, []byte("content-length")):
			n, ok := parseDecimal(v)
			if !ok || h.contentLength >= 0 && h.contentLength != n {
				return errBadResponse
			}
			if h.contentLength >= 0 {
				return h.dropLine(s)
			}
			h.contentLength = n
			clLine = s
		case bytes.EqualFold(name, []byte("transfer-encoding")):
			if !bytes.EqualFold(v, []byte("chunked")) || h.chunked {
				return errBadResponse
			}
			h.chunked = true
		case bytes.EqualFold(name, []byte("connection")):
			for tok := range bytes.SplitSeq(v, []byte(",")) {
				tok = bytes.TrimSpace(tok)
				if bytes.EqualFold(tok, []byte("close")) {
					h.close = true
				} else if bytes.EqualFold(tok, []byte("keep-alive")) {
					h.close = false
				}
			}
			return h.dropLine(s)
		case bytes.EqualFold(name, []byte("keep-alive")), bytes.EqualFold(name, []byte("proxy-connection")),
			bytes.EqualFold(name, own):
			return h.dropLine(s)
		case bytes.EqualFold(name, hdrGatewayError):
			if !gatewayUpstream {
				return h.dropLine(s)
			}
			h.gatewayError = v
		case bytes.EqualFold(name, hdrRoute):
			if h.route == nil {
				h.route = v
			}
			return h.dropLine(s)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if h.chunked && h.contentLength >= 0 {
		h.contentLength = -1
		if err := h.dropLine(clLine); err != nil {
			return 0, err
		}
	}
	return h.headLen, nil
}

func (h *respHead) dropLine(s span) error {
	if h.ndrop == maxDrops {
		return errBadResponse
	}
	h.drops[h.ndrop] = s
	h.ndrop++
	return nil
}

// appendKept appends head[from:to] leaving out the dropped lines (sorted
// by position, as the parsers record them).
func appendKept(dst, head []byte, from, to int, drops []span) []byte {
	for _, d := range drops {
		if int(d.start) < from || d.end == 0 {
			continue
		}
		dst = append(dst, head[from:d.start]...)
		from = int(d.end)
	}
	return append(dst, head[from:to]...)
}

// chunkedBody follows a chunked body as it streams through, to find its
// end. It never changes the bytes.
type chunkedBody struct {
	state  int8
	remain int64 // bytes left in the current chunk's data
	size   int64
	digits int
}

const (
	chSize      = iota // reading the chunk size's hex digits
	chExt              // skipping a chunk extension up to CR
	chSizeLF           // expecting LF after the size line
	chData             // in chunk data
	chDataCR           // expecting CR after the data
	chDataLF           // expecting LF after the data
	chTrailer          // at the start of a trailer line (or the final CRLF)
	chTrailerL         // inside a trailer line
	chTrailerLF        // expecting LF after a trailer line
	chFinalLF          // expecting the final LF
	chSizeWS           // trailing white space after the size
	chDone
)

// feed consumes p and reports how many of its bytes belong to the body
// and whether the body ended there.
func (c *chunkedBody) feed(p []byte) (int, bool, error) {
	i := 0
	for i < len(p) {
		b := p[i]
		switch c.state {
		case chSize:
			switch {
			case b >= '0' && b <= '9', b >= 'a' && b <= 'f', b >= 'A' && b <= 'F':
				if c.digits == 15 {
					return i, false, errBadResponse
				}
				c.digits++
				c.size = c.size<<4 | int64(unhex(b))
			case b == ';':
				if c.digits == 0 {
					return i, false, errBadResponse
				}
				c.state = chExt
			case b == ' ' || b == '\t':
				if c.digits == 0 {
					return i, false, errBadResponse
				}
				c.state = chSizeWS
			case b == '\r':
				if c.digits == 0 {
					return i, false, errBadResponse
				}
				c.state = chSizeLF
			default:
				return i, false, errBadResponse
			}
		case chSizeWS:
			if b == '\r' {
				c.state = chSizeLF
			} else if b != ' ' && b != '\t' {
				return i, false, errBadResponse
			}
		case chExt:
			if b == '\r' {
				c.state = chSizeLF
			} else if b == '\n' {
				return i, false, errBadResponse
			}
		case chSizeLF:
			if b != '\n' {
				return i, false, errBadResponse
			}
			if c.size == 0 {
				c.state = chTrailer
			} else {
				c.state, c.remain = chData, c.size
			}
			c.size, c.digits = 0, 0
		case chData:
			n := min(int64(len(p)-i), c.remain)
			c.remain -= n
			i += int(n)
			if c.remain == 0 {
				c.state = chDataCR
			}
			continue
		case chDataCR:
			if b != '\r' {
				return i, false, errBadResponse
			}
			c.state = chDataLF
		case chDataLF:
			if b != '\n' {
				return i, false, errBadResponse
			}
			c.state = chSize
		case chTrailer:
			if b == '\r' {
				c.state = chFinalLF
			} else {
				c.state = chTrailerL
			}
		case chTrailerL:
			if b == '\r' {
				c.state = chTrailerLF
			}
		case chTrailerLF:
			if b != '\n' {
				return i, false, errBadResponse
			}
			c.state = chTrailer
		case chFinalLF:
			if b != '\n' {
				return i, false, errBadResponse
			}
			c.state = chDone
			return i + 1, true, nil
		}
		i++
	}
	return i, false, nil
}

func unhex(b byte) byte {
	switch {
	case b <= '9':
		return b - '0'
	case b <= 'F':
		return b - 'A' + 10
	}
	return b - 'a' + 10
}

// maxInlineBytes bounds the request body the loop buffers itself; larger
// bodies go to the slow path, which streams them.
const maxInlineBytes = 64 << 10
