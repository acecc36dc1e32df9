// Package gateway is Pave's embedded L7 data plane: a reverse proxy that
// routes by host and path prefix to a service and splits the service's
// traffic between versions (or, at the edge, between clusters) by weight,
// exactly, with header and sticky overrides, keep-alive pools, retries of
// failed connections, passive outlier ejection, live per-version
// statistics and an access log.
//
// Configuration is copy-on-write: every change builds a new immutable
// route table and swaps it in with one atomic store, so a request sees
// either the old table or the new one, never half of a change.
package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pave-platform/pave/internal/shadow"
)

// Options configure a Gateway. The zero value is usable.
type Options struct {
	// Log receives the gateway's own operational messages.
	Log *slog.Logger
	// AccessLog receives one record per request (nil: none).
	AccessLog AccessLogger
	// AccessLogQueue bounds the records waiting for AccessLog (default 8192);
	// beyond it records are dropped and counted.
	AccessLogQueue int
	// HostSuffix makes Host "SERVICE"+HostSuffix reach SERVICE
	// (default ".localhost").
	HostSuffix string
	// VersionHeader pins a request to a version (default "X-Pave-Version").
	// It and the sticky key are honoured only for trusted clients (see
	// PinNetworks and TesterCheck); otherwise the header is stripped and
	// the request takes the weighted split.
	VersionHeader string
	// PinNetworks are the client networks whose requests may pin a version
	// or stick to one. Nil: loopback only (127.0.0.0/8, ::1); an empty,
	// non-nil slice: none.
	PinNetworks []netip.Prefix
	// TesterHeader carries a tester's credential (default
	// "X-Pave-Tester-Token"); TesterCheck says whether it may pin (pave
	// up: a token of role deployer or higher). The header is never
	// forwarded to a service.
	TesterHeader string
	TesterCheck  func(token string) bool
	// StickyHeader and StickyCookie name the key that keeps one user on one
	// version (e.g. "X-User-Id", or a cookie "merchant_id"). The header wins
	// when both are present; neither set disables stickiness.
	StickyHeader string
	StickyCookie string
	// CallerHeader and MerchantHeader fill the access log's caller and
	// merchant_id (defaults "X-Pave-Caller", "X-Merchant-Id").
	CallerHeader   string
	MerchantHeader string
	// Cluster and Datacenter label this gateway's access records; Cluster
	// also names the local cluster in edge mode.
	Cluster    string
	Datacenter string
	// UpstreamTimeout bounds one upstream attempt, from writing the request
	// to reading the whole answer (default 60s). DialTimeout bounds
	// connecting (default 2s).
	UpstreamTimeout time.Duration
	DialTimeout     time.Duration
	// The client side's limits, so a slow or hostile client holds a
	// connection for a bounded time and never starves others:
	// ReadHeaderTimeout bounds receiving a request's head, from its first
	// byte (or the connection's start), which ends slowloris clients;
	// ClientTimeout bounds receiving the whole request; WriteTimeout closes
	// a client that takes no part of its answer for that long; IdleTimeout
	// closes idle keep-alive connections (defaults 10s, 60s, 60s, 120s).
	// On h2c, whose streams may live long (gRPC), only ReadHeaderTimeout,
	// IdleTimeout and the body limit apply.
	ReadHeaderTimeout time.Duration
	ClientTimeout     time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	// Retries is how many other endpoints a request may be retried on after
	// a connection failure (default 2).
	Retries int
	// EjectAfter consecutive failures (connection failures or 5xx) eject an
	// endpoint for EjectFor, doubling on each new ejection up to 8× (defaults
	// 5 and 10s).
	EjectAfter int
	EjectFor   time.Duration
	// MaxBodyBytes bounds request bodies on every path (a larger one is
	// answered 413) and response bodies on the fasthttp path (default 64
	// MiB).
	MaxBodyBytes int
	// MaxConnsPerEndpoint bounds the keep-alive pool of one endpoint
	// (default 1024).
	MaxConnsPerEndpoint int
	// NoEventLoop serves every connection with the goroutine-per-connection
	// fasthttp server. By default, on Linux, plain HTTP/1.1 requests are
	// served by an epoll event loop per core (loop_linux.go), which hands
	// anything else (WebSocket, h2c, Expect, chunked or large request
	// bodies, HTTP/1.0...) over to that server.
	NoEventLoop bool
}

func (o *Options) defaults() {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.AccessLogQueue <= 0 {
		o.AccessLogQueue = 8192
	}
	if o.HostSuffix == "" {
		o.HostSuffix = ".localhost"
	}
	if o.VersionHeader == "" {
		o.VersionHeader = "X-Pave-Version"
	}
	if o.TesterHeader == "" {
		o.TesterHeader = "X-Pave-Tester-Token"
	}
	if o.CallerHeader == "" {
		o.CallerHeader = "X-Pave-Caller"
	}
	if o.MerchantHeader == "" {
		o.MerchantHeader = "X-Merchant-Id"
	}
	if o.UpstreamTimeout <= 0 {
		o.UpstreamTimeout = 60 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 2 * time.Second
	}
	if o.ClientTimeout <= 0 {
		o.ClientTimeout = 60 * time.Second
	}
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = min(10*time.Second, o.ClientTimeout)
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 60 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 120 * time.Second
	}
	if o.Retries < 0 {
		o.Retries = 0
	} else if o.Retries == 0 {
		o.Retries = 2
	}
	if o.EjectAfter <= 0 {
		o.EjectAfter = 5
	}
	if o.EjectFor <= 0 {
		o.EjectFor = 10 * time.Second
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 64 << 20
	}
	if o.MaxConnsPerEndpoint <= 0 {
		o.MaxConnsPerEndpoint = 1024
	}
}

// Route sends requests for Host (empty: any host) whose path starts with
// PathPrefix to Service. The longest matching prefix wins; routes are
// tried before the SERVICE.localhost default.
type Route struct {
	Host       string `json:"host,omitempty"`
	PathPrefix string `json:"path_prefix"`
	Service    string `json:"service"`
}

// Cluster is one destination of a service's traffic at the edge: a share
// of it (parts per million) and the gateways of that cluster, or Local to
// serve that share by this gateway's own version split.
type Cluster struct {
	Name      string   `json:"name"`
	Weight    int64    `json:"weight"`
	Endpoints []string `json:"endpoints,omitempty"`
	Local     bool     `json:"local,omitempty"`
}

// ErrInvalid marks configuration the gateway refused; the previous
// configuration stays in force.
var ErrInvalid = errors.New("invalid gateway configuration")

// serviceConfig is the desired state of one service, kept under g.mu.
type serviceConfig struct {
	endpoints map[string][]string // version -> ready endpoints
	weights   map[string]int64    // nil: split evenly between versions with endpoints
	clusters  []Cluster           // edge mode, nil when off
	mirror    *mirrorer           // the shadow step's mirror, nil when off
}

// Gateway is the data plane. Create it with New; it is safe for
// concurrent use, and configuration may change while it serves.
type Gateway struct {
	opts  Options
	table atomic.Pointer[table]

	mu        sync.Mutex // serialises configuration changes
	services  map[string]*serviceConfig
	routes    []Route
	upstreams map[string]*upstream // by address, shared by tables

	statsMu sync.Mutex
	stats   map[string]map[string]*versionStats
	books   map[string]*routeBook // route templates by service, under statsMu

	// mirrorRecs keeps each service's last shadow recorder (under mu), so
	// its counts stay readable after the mirror is turned off.
	mirrorRecs map[string]*shadow.Recorder

	trust *trust

	accessCh      chan *AccessRecord
	accessDropped atomic.Uint64

	// loopRequests and handovers count requests the event loop served and
	// connections it passed to the fasthttp or h2c server.
	loopRequests, handovers atomic.Uint64

	versionHeader, stickyHeader, callerHeader, merchantHeader, testerHeader []byte
	stickyCookie, hostSuffix, edgeValue                                     []byte
}

// New returns a Gateway with an empty route table.
func New(o Options) *Gateway {
	o.defaults()
	g := &Gateway{
		opts:           o,
		services:       map[string]*serviceConfig{},
		upstreams:      map[string]*upstream{},
		stats:          map[string]map[string]*versionStats{},
		books:          map[string]*routeBook{},
		mirrorRecs:     map[string]*shadow.Recorder{},
		trust:          newTrust(o.PinNetworks, o.TesterCheck),
		versionHeader:  []byte(o.VersionHeader),
		testerHeader:   []byte(o.TesterHeader),
		stickyHeader:   []byte(o.StickyHeader),
		stickyCookie:   []byte(o.StickyCookie),
		callerHeader:   []byte(o.CallerHeader),
		merchantHeader: []byte(o.MerchantHeader),
		hostSuffix:     []byte(o.HostSuffix),
		edgeValue:      []byte(o.Cluster),
	}
	if o.Cluster == "" {
		g.edgeValue = []byte("1")
	}
	g.table.Store(&table{services: map[string]*service{}})
	if o.AccessLog != nil {
		g.accessCh = make(chan *AccessRecord, o.AccessLogQueue)
		go g.drainAccessLog()
	}
	return g
}

// drainAccessLog hands records to the logger, in batches of whatever has
// queued up (at most accessBatch) when it implements BatchAccessLogger.
func (g *Gateway) drainAccessLog() {
	batcher, _ := g.opts.AccessLog.(BatchAccessLogger)
	batch := make([]*AccessRecord, 0, accessBatch)
	for r := range g.accessCh {
		if batcher == nil {
			g.opts.AccessLog.LogAccess(r)
			continue
		}
		batch = append(batch[:0], r)
	more:
		for len(batch) < accessBatch {
			select {
			case r := <-g.accessCh:
				batch = append(batch, r)
			default:
				break more
			}
		}
		batcher.LogAccessBatch(batch)
	}
}

const accessBatch = 512

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`)

func validName(kind, name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: %s name %q: use 1-63 lower-case letters, digits, '.', '_' or '-'", ErrInvalid, kind, name)
	}
	return nil
}

func validEndpoint(ep string) error {
	host, port, err := net.SplitHostPort(ep)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("%w: endpoint %q: want HOST:PORT, e.g. 127.0.0.1:8081", ErrInvalid, ep)
	}
	return nil
}

func (g *Gateway) service(name string) *serviceConfig {
	sc := g.services[name]
	if sc == nil {
		sc = &serviceConfig{endpoints: map[string][]string{}}
		g.services[name] = sc
	}
	return sc
}

// SetEndpoints replaces the ready endpoints ("127.0.0.1:PORT") of one
// version of a service; an empty slice removes them. The local runtime
// calls it whenever an instance becomes ready, crashes or stops. Invalid
// endpoints are logged and left out.
func (g *Gateway) SetEndpoints(service, version string, endpoints []string) {
	if err := errors.Join(validName("service", service), validName("version", version)); err != nil {
		g.opts.Log.Error("gateway: endpoints refused", "service", service, "version", version, "err", err)
		return
	}
	clean := make([]string, 0, len(endpoints))
	seen := map[string]bool{}
	for _, ep := range endpoints {
		if err := validEndpoint(ep); err != nil {
			g.opts.Log.Error("gateway: endpoint refused", "service", service, "version", version, "err", err)
			continue
		}
		if !seen[ep] {
			seen[ep] = true
			clean = append(clean, ep)
		}
	}
	sort.Strings(clean)
	g.mu.Lock()
	defer g.mu.Unlock()
	sc := g.service(service)
	if len(clean) == 0 {
		delete(sc.endpoints, version)
	} else {
		sc.endpoints[version] = clean
	}
	g.rebuildLocked()
}

// Versions lists the versions of a service that have ready endpoints.
func (g *Gateway) Versions(service string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	if sc := g.services[service]; sc != nil {
		for v := range sc.endpoints {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

// Endpoints returns the ready endpoints of a service by version.
func (g *Gateway) Endpoints(service string) map[string][]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string][]string{}
	if sc := g.services[service]; sc != nil {
		for v, eps := range sc.endpoints {
			out[v] = append([]string(nil), eps...)
		}
	}
	return out
}

func checkWeights(w map[string]int64) error {
	if len(w) == 0 {
		return fmt.Errorf("%w: no weights given", ErrInvalid)
	}
	var sum int64
	for v, p := range w {
		if err := validName("version", v); err != nil {
			return err
		}
		if p < 0 {
			return fmt.Errorf("%w: version %s has a negative weight %d ppm", ErrInvalid, v, p)
		}
		sum += p
	}
	if sum != totalWeight {
		return fmt.Errorf("%w: weights sum to %d ppm, want %d (100%%)", ErrInvalid, sum, totalWeight)
	}
	return nil
}

// SetWeights sets the split of a service's traffic between its versions,
// in parts per million summing to 1,000,000. Versions that currently have
// no ready endpoint are skipped while they have none and their share goes
// to the others in proportion. It fails, changing nothing, when the
// weights are invalid.
func (g *Gateway) SetWeights(service string, w map[string]int64) error {
	if err := validName("service", service); err != nil {
		return err
	}
	if err := checkWeights(w); err != nil {
		return err
	}
	cp := make(map[string]int64, len(w))
	for k, v := range w {
		cp[k] = v
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.service(service).weights = cp
	g.rebuildLocked()
	return nil
}

// Weights returns the weights set for a service (nil: none set, traffic
// is split evenly between versions with endpoints).
func (g *Gateway) Weights(service string) map[string]int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	sc := g.services[service]
	if sc == nil || sc.weights == nil {
		return nil
	}
	out := make(map[string]int64, len(sc.weights))
	for k, v := range sc.weights {
		out[k] = v
	}
	return out
}

// SetClusterWeights turns on edge mode for a service: its traffic is split
// between clusters by weight (ppm summing to 1,000,000) with the same
// exact picker as versions. A remote cluster's share is forwarded to its
// gateways (Endpoints) with the Host kept and an X-Pave-Edge header, so
// the receiving gateway applies its own version split instead of splitting
// by cluster again; the Local cluster's share is served here. An empty
// slice turns edge mode off.
func (g *Gateway) SetClusterWeights(service string, clusters []Cluster) error {
	if err := validName("service", service); err != nil {
		return err
	}
	var cp []Cluster
	if len(clusters) > 0 {
		var sum int64
		seen := map[string]bool{}
		locals := 0
		for i, c := range clusters {
			if err := validName("cluster", c.Name); err != nil {
				return fmt.Errorf("clusters[%d]: %w", i, err)
			}
			if seen[c.Name] {
				return fmt.Errorf("%w: clusters[%d]: cluster %s is listed twice", ErrInvalid, i, c.Name)
			}
			seen[c.Name] = true
			if c.Weight < 0 {
				return fmt.Errorf("%w: clusters[%d] (%s): negative weight", ErrInvalid, i, c.Name)
			}
			if c.Local {
				locals++
				if len(c.Endpoints) > 0 {
					return fmt.Errorf("%w: clusters[%d] (%s): a local cluster has no endpoints", ErrInvalid, i, c.Name)
				}
			} else if len(c.Endpoints) == 0 {
				return fmt.Errorf("%w: clusters[%d] (%s): a remote cluster needs the addresses of its gateways", ErrInvalid, i, c.Name)
			}
			for _, ep := range c.Endpoints {
				if err := validEndpoint(ep); err != nil {
					return fmt.Errorf("clusters[%d] (%s): %w", i, c.Name, err)
				}
			}
			sum += c.Weight
			c.Endpoints = append([]string(nil), c.Endpoints...)
			cp = append(cp, c)
		}
		if locals > 1 {
			return fmt.Errorf("%w: %d clusters are marked local; at most one may be", ErrInvalid, locals)
		}
		if sum != totalWeight {
			return fmt.Errorf("%w: cluster weights sum to %d ppm, want %d (100%%)", ErrInvalid, sum, totalWeight)
		}
		sort.Slice(cp, func(i, j int) bool { return cp[i].Name < cp[j].Name })
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.service(service).clusters = cp
	g.rebuildLocked()
	return nil
}

// SetRoutes replaces the explicit host/path-prefix routes. Two routes with
// the same host and prefix collide and are refused, naming both; the
// previous routes stay in force.
func (g *Gateway) SetRoutes(routes []Route) error {
	seen := map[string]int{}
	cp := make([]Route, 0, len(routes))
	for i, r := range routes {
		r.Host = strings.ToLower(r.Host)
		if r.PathPrefix == "" {
			r.PathPrefix = "/"
		}
		if !strings.HasPrefix(r.PathPrefix, "/") || strings.Contains(r.PathPrefix, "..") {
			return fmt.Errorf("%w: routes[%d]: path prefix %q must start with '/' and not contain '..'", ErrInvalid, i, r.PathPrefix)
		}
		if strings.ContainsAny(r.Host, "/ ") {
			return fmt.Errorf("%w: routes[%d]: host %q is not a host name", ErrInvalid, i, r.Host)
		}
		if err := validName("service", r.Service); err != nil {
			return fmt.Errorf("routes[%d]: %w", i, err)
		}
		key := r.Host + " " + r.PathPrefix
		if j, dup := seen[key]; dup {
			return fmt.Errorf("%w: routes[%d] (host %q, prefix %q -> %s) collides with routes[%d] (-> %s)",
				ErrInvalid, i, r.Host, r.PathPrefix, r.Service, j, routes[j].Service)
		}
		seen[key] = i
		cp = append(cp, r)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.routes = cp
	g.rebuildLocked()
	return nil
}

// Routes returns the explicit routes.
func (g *Gateway) Routes() []Route {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Route(nil), g.routes...)
}
