// Package vlstore keeps Pave's telemetry in VictoriaLogs (single node or
// cluster) behind telemetry.Store: the setting
// telemetry-store: victorialogs://host:port[,host:port]. Every log line and
// span is one structured record sent to /insert/jsonline; an append is
// acknowledged only once VictoriaLogs holds every record of it on disk (see
// write.go); queries, counts and trace lookups are LogsQL against
// /select/logsql/query with the embedded store's semantics.
package vlstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pave-platform/pave/internal/telemetry"
)

// Options configure the store. Zero values take the defaults.
type Options struct {
	// Addrs are host:port of VictoriaLogs nodes serving /insert and
	// /select (single nodes, or a cluster's vlinsert+vlselect nodes).
	Addrs []string
	// FlushInterval is the storage nodes' -inmemoryDataFlushInterval
	// (VictoriaLogs' default 5s): how long a received record may stay in
	// memory only. An append is acknowledged once its records are
	// searchable and have outlived that window (see write.go); 0 keeps the
	// default, a negative value acknowledges as soon as they are
	// searchable (not durable against a storage node's crash).
	FlushInterval time.Duration
	// AckTimeout bounds how long an append waits for VictoriaLogs (30s).
	AckTimeout time.Duration
	Client     *http.Client
}

// Store is a telemetry.Store on VictoriaLogs.
type Store struct {
	o      Options
	next   atomic.Uint32 // round-robin over Addrs
	commit *committer
}

var _ telemetry.Store = (*Store)(nil)
var _ telemetry.Counter = (*Store)(nil)

// ParseURL reads the setting victorialogs://host:port[,host:port][?flush-interval=5s].
func ParseURL(s string) (Options, error) {
	rest, ok := strings.CutPrefix(s, "victorialogs://")
	if !ok {
		return Options{}, fmt.Errorf("%q: want victorialogs://host:port[,host:port]", s)
	}
	if strings.Contains(rest, "@") {
		// Not repeated: the value may hold a password.
		return Options{}, errors.New("victorialogs://user:password@… is not supported: keep VictoriaLogs on a private network, or behind a proxy that authenticates Pave by its address")
	}
	hosts, query, _ := strings.Cut(rest, "?")
	var o Options
	for _, h := range strings.Split(hosts, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" || port == "" || strings.ContainsAny(h, "/@ ") {
			return Options{}, fmt.Errorf("%q: address %q is not host:port", s, h)
		}
		o.Addrs = append(o.Addrs, h)
	}
	v, err := url.ParseQuery(query)
	if err != nil {
		return Options{}, fmt.Errorf("%q: %w", s, err)
	}
	for k := range v {
		if k != "flush-interval" {
			return Options{}, fmt.Errorf("%q: unknown parameter %q; known: flush-interval", s, k)
		}
	}
	if f := v.Get("flush-interval"); f != "" {
		d, err := time.ParseDuration(f)
		if err != nil {
			return Options{}, fmt.Errorf("%q: flush-interval %q is not a duration such as 5s", s, f)
		}
		if d == 0 {
			d = -1
		}
		o.FlushInterval = d
	}
	return o, nil
}

// Redact hides what precedes an "@" in a telemetry-store value (a user
// and password someone put there), for error messages.
func Redact(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if i := strings.LastIndex(rest, "@"); ok && i >= 0 {
		return scheme + "://REDACTED" + rest[i:]
	}
	return s
}

// Open checks that VictoriaLogs answers and returns the store. Close it to
// stop the committer.
func Open(ctx context.Context, o Options) (*Store, error) {
	if len(o.Addrs) == 0 {
		return nil, errors.New("vlstore: no VictoriaLogs address")
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = 5 * time.Second
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = 30 * time.Second
	}
	if o.Client == nil {
		o.Client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32, IdleConnTimeout: 30 * time.Second}}
	}
	s := &Store{o: o}
	var errs []error
	for _, a := range o.Addrs {
		if err := s.health(ctx, a); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == len(o.Addrs) {
		return nil, fmt.Errorf("no VictoriaLogs node answers: %w", errors.Join(errs...))
	}
	s.commit = newCommitter(s)
	return s, nil
}

// Close stops the committer; appends waiting on it fail.
func (s *Store) Close() error {
	s.commit.stop()
	return nil
}

func (s *Store) health(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := s.o.Client.Do(req)
	if err != nil {
		return fmt.Errorf("VictoriaLogs at %s: %w", addr, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("VictoriaLogs at %s: /health answered %s", addr, resp.Status)
	}
	return nil
}

// do sends a request to the nodes in turn, starting with the next in the
// rotation, until one answers 2xx; body makes the request for a node.
func (s *Store) do(ctx context.Context, method, path string, body func() io.Reader, header http.Header) (*http.Response, error) {
	start := int(s.next.Add(1))
	var errs []error
	for i := range s.o.Addrs {
		addr := s.o.Addrs[(start+i)%len(s.o.Addrs)]
		var r io.Reader
		if body != nil {
			r = body()
		}
		req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, r)
		if err != nil {
			return nil, err
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := s.o.Client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		if resp.StatusCode/100 == 2 {
			return resp, nil
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		err = fmt.Errorf("%s%s: %s: %s", addr, strings.SplitN(path, "?", 2)[0], resp.Status, strings.TrimSpace(string(msg)))
		if resp.StatusCode == http.StatusBadRequest {
			return nil, err // the same request fails everywhere
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// selectRows runs a LogsQL query and calls fn with each row.
func (s *Store) selectRows(ctx context.Context, query string, partial bool, fn func(map[string]string) error) error {
	form := url.Values{"query": {query}}
	if partial {
		form.Set("allow_partial_response", "1")
	}
	enc := form.Encode()
	resp, err := s.do(ctx, http.MethodPost, "/select/logsql/query", func() io.Reader { return strings.NewReader(enc) },
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 32<<20)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		row, err := decodeRow(sc.Bytes())
		if err != nil {
			return fmt.Errorf("VictoriaLogs answer: %w", err)
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading VictoriaLogs' answer: %w", err)
	}
	return nil
}
