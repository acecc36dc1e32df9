// Package apiclient is how every pave command except `up` talks to the
// control plane: JSON over HTTP with a bearer token, and errors a person can
// act on.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Client calls the control plane's API.
type Client struct {
	Server string // e.g. http://127.0.0.1:7070
	// Token is the bearer token; empty lets the client use the admin
	// token file of a control plane on loopback (see localToken).
	Token string
	HTTP  *http.Client

	localOnce    sync.Once
	local        string
	localProblem string
	localKeyFile string
	setupErr     error // a bad --ca-file, reported by the first call
}

// New returns a client for server with an optional token.
func New(server, token string) *Client {
	hc, err := newHTTPClient()
	c := &Client{Server: strings.TrimRight(server, "/"), Token: token, HTTP: hc}
	if err != nil {
		c.HTTP, c.setupErr = &http.Client{}, err
	}
	return c
}

// Error is an answer from the API that was not a success.
type Error struct {
	Status  int
	Message string
	Field   string
}

func (e *Error) Error() string {
	msg := e.Message
	if e.Field != "" && !strings.HasPrefix(msg, e.Field) {
		msg = e.Field + ": " + msg
	}
	switch e.Status {
	case http.StatusUnauthorized:
		return "not authorised (401): " + msg
	case http.StatusForbidden:
		return "forbidden (403): " + msg
	}
	return msg
}

// UnreachableError reports that no control plane answered at Server.
type UnreachableError struct {
	Server string
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the Pave control plane at %s (%v); start it with `pave up`, or point --server / PAVE_SERVER at it", e.Server, e.Err)
}
func (e *UnreachableError) Unwrap() error { return e.Err }

// Do sends in (JSON-encoded unless nil) and decodes the answer into out
// (unless nil).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.Raw(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
	}
	return nil
}

// Raw sends a request and returns a successful response for streaming; the
// caller closes its body. Non-2xx answers become *Error.
func (c *Client) Raw(ctx context.Context, method, path string, in any) (*http.Response, error) {
	if c.setupErr != nil {
		return nil, c.setupErr
	}
	var body io.Reader
	if in != nil {
		if r, ok := in.(io.Reader); ok {
			body = r
		} else {
			b, err := json.Marshal(in)
			if err != nil {
				return nil, err
			}
			body = bytes.NewReader(b)
		}
	}
	u := c.Server + path
	if _, err := url.Parse(u); err != nil {
		return nil, fmt.Errorf("server address %q: %w", c.Server, err)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("server address %q: %w", c.Server, err)
	}
	if in == nil && method != http.MethodGet && method != http.MethodHead {
		// The API takes state-changing requests only as JSON.
		req.Body, req.ContentLength = io.NopCloser(strings.NewReader("{}")), 2
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("{}")), nil }
		in = struct{}{}
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	token := c.Token
	if token == "" && path != "/healthz" {
		token = c.localToken(ctx)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		var opErr *net.OpError
		var dnsErr *net.DNSError
		if errors.As(err, &opErr) || errors.As(err, &dnsErr) || errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, &UnreachableError{Server: c.Server, Err: unwrapOp(err)}
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var apiErr struct {
			Error string `json:"error"`
			Field string `json:"field"`
		}
		if json.Unmarshal(b, &apiErr) != nil || apiErr.Error == "" {
			apiErr.Error = fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
		}
		if resp.StatusCode == http.StatusUnauthorized && c.localProblem != "" {
			apiErr.Error += " (the local admin token could not be used: " + c.localProblem + ")"
		}
		return nil, &Error{Status: resp.StatusCode, Message: apiErr.Error, Field: apiErr.Field}
	}
	return resp, nil
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func unwrapOp(err error) error {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		return opErr.Err
	}
	return err
}

// WaitHealthy polls /healthz until it answers 200 or ctx ends.
func (c *Client) WaitHealthy(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		var out map[string]string
		err := c.Do(ctx, http.MethodGet, "/healthz", nil, &out)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("control plane at %s not healthy: %w", c.Server, err)
		case <-t.C:
		}
	}
}
