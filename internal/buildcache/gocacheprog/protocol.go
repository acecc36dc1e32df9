package gocacheprog

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/pave-platform/pave/internal/buildcache/tier"
	"io"
	"sync"
	"time"
)

// The GOCACHEPROG protocol (cmd/go/internal/cacheprog, stable since Go
// 1.24): the go command starts the program, which announces the commands it
// knows; then the go command writes requests as JSON lines on the program's
// stdin and the program answers each, in any order, on stdout. A "put" with
// a body is followed by the body as one base64 JSON string. The types mirror
// cacheprog's, which is internal to cmd/go and cannot be imported.

// Cmd is a GOCACHEPROG command.
type Cmd string

const (
	CmdGet   Cmd = "get"
	CmdPut   Cmd = "put"
	CmdClose Cmd = "close"
)

// Request is one message from the go command.
type Request struct {
	ID       int64
	Command  Cmd
	ActionID []byte `json:",omitempty"`
	OutputID []byte `json:",omitempty"`
	BodySize int64  `json:",omitempty"`
	// Body is the put's body, read by the decoder (never part of the JSON
	// object itself).
	Body []byte `json:"-"`
}

// Response is one message to the go command.
type Response struct {
	ID            int64
	Err           string     `json:",omitempty"`
	KnownCommands []Cmd      `json:",omitempty"`
	Miss          bool       `json:",omitempty"`
	OutputID      []byte     `json:",omitempty"`
	Size          int64      `json:",omitempty"`
	Time          *time.Time `json:",omitempty"`
	DiskPath      string     `json:",omitempty"`
}

// MaxBodySize bounds one put's body: the go command caches compiled
// packages and linked test binaries, which stay well below it. A larger
// announced size is a broken or hostile peer, refused before reading.
const MaxBodySize = tier.MaxObjectSize

// hashSize is the length of ActionIDs and OutputIDs (SHA-256).
const hashSize = 32

// Decoder reads requests from the go command.
type Decoder struct{ d *json.Decoder }

// NewDecoder reads requests from r.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{d: json.NewDecoder(bufio.NewReaderSize(r, 64<<10))}
}

// Decode returns the next request with its body, io.EOF at the end of the
// stream, or an error naming what is wrong with the message.
func (d *Decoder) Decode() (*Request, error) {
	var req Request
	if err := d.d.Decode(&req); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("gocacheprog: reading a request: %w", err)
	}
	if err := req.check(); err != nil {
		return nil, err
	}
	if req.Command != CmdPut || req.BodySize == 0 {
		return &req, nil
	}
	// encoding/json decodes a base64 string into a []byte.
	if err := d.d.Decode(&req.Body); err != nil {
		return nil, fmt.Errorf("gocacheprog: request %d: reading the put's body of %d bytes: %w", req.ID, req.BodySize, err)
	}
	if int64(len(req.Body)) != req.BodySize {
		return nil, fmt.Errorf("gocacheprog: request %d: body has %d bytes, BodySize says %d", req.ID, len(req.Body), req.BodySize)
	}
	return &req, nil
}

func (r *Request) check() error {
	switch r.Command {
	case CmdClose:
		return nil
	case CmdGet, CmdPut:
	default:
		return fmt.Errorf("gocacheprog: request %d: unknown command %q (want get, put or close)", r.ID, r.Command)
	}
	if len(r.ActionID) != hashSize {
		return fmt.Errorf("gocacheprog: request %d: ActionID has %d bytes, want %d", r.ID, len(r.ActionID), hashSize)
	}
	if r.Command == CmdGet {
		return nil
	}
	if len(r.OutputID) != hashSize {
		return fmt.Errorf("gocacheprog: request %d: OutputID has %d bytes, want %d", r.ID, len(r.OutputID), hashSize)
	}
	if r.BodySize < 0 || r.BodySize > MaxBodySize {
		return fmt.Errorf("gocacheprog: request %d: BodySize %d outside 0..%d", r.ID, r.BodySize, MaxBodySize)
	}
	return nil
}

// Encoder writes responses; it is safe for concurrent use, since requests
// are answered as they finish.
type Encoder struct {
	mu sync.Mutex
	w  *bufio.Writer
	e  *json.Encoder
}

// NewEncoder writes responses to w.
func NewEncoder(w io.Writer) *Encoder {
	bw := bufio.NewWriterSize(w, 16<<10)
	return &Encoder{w: bw, e: json.NewEncoder(bw)}
}

// Encode writes one response and flushes it, so the go command never waits
// on a buffer.
func (e *Encoder) Encode(r *Response) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.e.Encode(r); err != nil {
		return err
	}
	return e.w.Flush()
}
