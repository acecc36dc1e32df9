package buildcache

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/pave-platform/pave/internal/buildcache/tier"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server answers the cache's HTTP API:
//
//	GET/HEAD/PUT /ac/KEY      action results (bazel-remote's API)
//	GET/HEAD/PUT /cas/SHA256  content-addressed blobs, verified on PUT
//	GET/PUT      /go/ACTIONID a Go build action in one round trip: the
//	                          output's bytes, with its OutputID in the
//	                          Go-Output-Id header (what the gocacheprog
//	                          client uses)
//	POST         /go/batch    the actions the body lists, in one stream
//	                          (tier.StreamMagic's format): prefetching
//	GET          /metrics     Prometheus metrics
//
// With Auth nil only loopback clients are served (one machine); otherwise
// every request needs a token, and writes a writer's.
type Server struct {
	Store *Store
	Auth  Authorizer
	// MaxObjectBytes bounds one PUT (default 1 GiB).
	MaxObjectBytes int64
	Log            *slog.Logger

	metrics *serverMetrics
	mux     *http.ServeMux
}

// NewServer wires the routes and metrics.
func NewServer(store *Store, auth Authorizer) *Server {
	s := &Server{Store: store, Auth: auth, MaxObjectBytes: tier.MaxObjectSize, Log: slog.Default()}
	s.metrics = newServerMetrics(func() float64 { return float64(store.Disk.Size()) })
	store.Disk.OnEvict = func(kind tier.Kind, size int64) {
		s.metrics.evictions.WithLabelValues(string(kind)).Inc()
		s.metrics.evicted.Add(float64(size))
	}
	s.mux = http.NewServeMux()
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	for _, k := range []tier.Kind{tier.AC, tier.CAS} {
		s.mux.HandleFunc("GET /"+string(k)+"/{key}", s.get(k))
		s.mux.HandleFunc("HEAD /"+string(k)+"/{key}", s.get(k))
		s.mux.HandleFunc("PUT /"+string(k)+"/{key}", s.put(k))
	}
	s.mux.HandleFunc("GET /go/{action}", s.getGo)
	s.mux.HandleFunc("POST /go/batch", s.batchGo)
	s.mux.HandleFunc("PUT /go/{action}", s.putGo)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	role, status, msg := s.authorize(r)
	if status != 0 {
		http.Error(w, msg, status)
		return
	}
	if r.Method == http.MethodPut && role < RoleWriter {
		s.metrics.refused.WithLabelValues("forbidden").Inc()
		http.Error(w, "this token is a reader's; writing to the cache needs a writer token", http.StatusForbidden)
		return
	}
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	s.mux.ServeHTTP(rec, r)
	if kind := routeKind(r.URL.Path); kind != "" {
		s.metrics.requests.WithLabelValues(r.Method, kind, strconv.Itoa(rec.code)).Observe(time.Since(start).Seconds())
	}
}

func routeKind(path string) string {
	for _, k := range []string{"ac", "cas", "go"} {
		if strings.HasPrefix(path, "/"+k+"/") {
			return k
		}
	}
	return ""
}

// authorize returns the caller's role, or the status and message refusing
// it.
func (s *Server) authorize(r *http.Request) (Role, int, string) {
	if s.Auth == nil {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return RoleNone, http.StatusForbidden, "this cache server has no tokens file and serves loopback clients only; start it with --tokens FILE to serve others"
		}
		return RoleWriter, 0, ""
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		// bazel-remote clients put credentials in the URL: the password is
		// the token.
		_, token, _ = r.BasicAuth()
	}
	role, err := s.Auth.Authorize(r.Context(), token)
	if err != nil {
		return RoleNone, http.StatusUnauthorized, "missing or unknown cache token: send Authorization: Bearer TOKEN (PAVE_CACHE_TOKEN for the gocacheprog client)"
	}
	return role, 0, ""
}

func (s *Server) get(kind tier.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		if err := tier.CheckKey(key); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body, n, err := s.Store.Open(r.Context(), kind, key)
		if err != nil {
			s.readError(w, kind, err)
			return
		}
		defer body.Close()
		s.metrics.hits.WithLabelValues(string(kind)).Inc()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		if r.Method == http.MethodHead {
			return
		}
		sent, _ := io.Copy(w, body)
		s.metrics.bytesOut.Add(float64(sent))
	}
}

func (s *Server) readError(w http.ResponseWriter, kind tier.Kind, err error) {
	if errors.Is(err, tier.ErrNotFound) {
		s.metrics.misses.WithLabelValues(string(kind)).Inc()
		http.Error(w, "not in the cache", http.StatusNotFound)
		return
	}
	s.Log.Error("cache read", "kind", kind, "err", err)
	http.Error(w, "reading the cache: "+err.Error(), http.StatusInternalServerError)
}

func (s *Server) put(kind tier.Kind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		if err := tier.CheckKey(key); err != nil {
			s.writeError(w, err)
			return
		}
		if r.ContentLength > s.MaxObjectBytes {
			s.writeError(w, fmt.Errorf("%w: Content-Length %d, limit %d", tier.ErrTooLarge, r.ContentLength, s.MaxObjectBytes))
			return
		}
		body := http.MaxBytesReader(w, r.Body, s.MaxObjectBytes)
		if err := s.Store.Put(r.Context(), kind, key, body, r.ContentLength); err != nil {
			s.writeError(w, err)
			return
		}
		if r.ContentLength > 0 {
			s.metrics.bytesIn.Add(float64(r.ContentLength))
		}
		w.WriteHeader(http.StatusOK)
	}
}

// writeError answers a refused write with the status that tells the client
// what to fix.
func (s *Server) writeError(w http.ResponseWriter, err error) {
	var status int
	var reason string
	var maxErr *http.MaxBytesError
	switch {
	case errors.Is(err, tier.ErrHashMismatch):
		status, reason = http.StatusBadRequest, "hash"
	case errors.Is(err, tier.ErrSizeMismatch):
		status, reason = http.StatusBadRequest, "size"
	case errors.Is(err, tier.ErrTooLarge), errors.As(err, &maxErr):
		status, reason = http.StatusRequestEntityTooLarge, "too_large"
	case errors.Is(err, tier.ErrNoSpace):
		status, reason = http.StatusInsufficientStorage, "no_space"
		w.Header().Set("Retry-After", "10")
	case strings.HasPrefix(err.Error(), "key "):
		status, reason = http.StatusBadRequest, "key"
	default:
		s.Log.Error("cache write", "err", err)
		status, reason = http.StatusInternalServerError, "error"
	}
	s.metrics.refused.WithLabelValues(reason).Inc()
	http.Error(w, err.Error(), status)
}

// getGo answers a Go action in one round trip: the action's entry names
// the output, whose bytes are the answer.
func (s *Server) getGo(w http.ResponseWriter, r *http.Request) {
	action := r.PathValue("action")
	if err := tier.CheckKey(action); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	e, err := s.goEntry(r, action)
	if err != nil {
		s.readError(w, "go", err)
		return
	}
	body, n, err := s.Store.Open(r.Context(), tier.CAS, e.OutputID)
	if err != nil {
		s.readError(w, "go", err)
		return
	}
	defer body.Close()
	if n != e.Size {
		s.readError(w, "go", fmt.Errorf("action %s: output %s has %d bytes, entry says %d", action, e.OutputID, n, e.Size))
		return
	}
	s.metrics.hits.WithLabelValues("go").Inc()
	w.Header().Set(tier.GoOutputHeader, e.OutputID)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.Header().Set("Last-Modified", e.Time.UTC().Format(http.TimeFormat))
	sent, _ := io.Copy(w, body)
	s.metrics.bytesOut.Add(float64(sent))
}

func (s *Server) goEntry(r *http.Request, action string) (tier.GoEntry, error) {
	f, _, err := s.Store.Open(r.Context(), tier.AC, action)
	if err != nil {
		return tier.GoEntry{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 512))
	if err != nil {
		return tier.GoEntry{}, err
	}
	e, err := tier.ParseGoEntry(b)
	if err != nil {
		// Some other client's action result under the same key: for Go it
		// is a miss.
		return tier.GoEntry{}, tier.ErrNotFound
	}
	return e, nil
}

// putGo stores the output in the CAS (verified against the OutputID) and
// then the action's entry, so an entry never names a missing output.
func (s *Server) putGo(w http.ResponseWriter, r *http.Request) {
	action, output := r.PathValue("action"), r.Header.Get(tier.GoOutputHeader)
	for _, k := range []string{action, output} {
		if err := tier.CheckKey(k); err != nil {
			s.writeError(w, err)
			return
		}
	}
	if r.ContentLength < 0 {
		http.Error(w, "a Go output needs a Content-Length", http.StatusLengthRequired)
		return
	}
	if r.ContentLength > s.MaxObjectBytes {
		s.writeError(w, fmt.Errorf("%w: Content-Length %d, limit %d", tier.ErrTooLarge, r.ContentLength, s.MaxObjectBytes))
		return
	}
	body := http.MaxBytesReader(w, r.Body, s.MaxObjectBytes)
	if s.Store.Disk.Has(tier.CAS, output, r.ContentLength) {
		io.Copy(io.Discard, body) // already there (another action's output)
	} else if err := s.Store.Put(r.Context(), tier.CAS, output, body, r.ContentLength); err != nil {
		s.writeError(w, err)
		return
	}
	e := tier.GoEntry{OutputID: output, Size: r.ContentLength, Time: time.Now()}.Encode()
	if err := s.Store.Put(r.Context(), tier.AC, action, bytes.NewReader(e), int64(len(e))); err != nil {
		s.writeError(w, err)
		return
	}
	s.metrics.bytesIn.Add(float64(r.ContentLength))
	w.WriteHeader(http.StatusOK)
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// ReadFrom keeps io.Copy's sendfile path for files.
func (r *statusRecorder) ReadFrom(src io.Reader) (int64, error) {
	return io.Copy(r.ResponseWriter, src)
}
