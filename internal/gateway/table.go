package gateway

import (
	"bytes"
	"net"
	"sort"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// table is one immutable routing configuration. Only the pickers' credit
// and the endpoints' health change after it is published.
type table struct {
	services map[string]*service
	routes   []compiledRoute // longest prefix first
}

type compiledRoute struct {
	host    []byte
	prefix  []byte
	service *service
	name    string
}

// service is a service's split: between versions, and in edge mode first
// between clusters.
type service struct {
	name      string
	versions  []*backend // sorted by name; weight 0 when not routable
	byVersion map[string]*backend
	split     *picker
	index     map[string]int

	clusters     []*backend
	clusterSplit *picker
	clusterIndex map[string]int

	book *routeBook // route templates, configured and learned

	mirror *mirrorer // nil: no shadow step (mirror.go)
}

// backend is one version (or one remote cluster) and its endpoints.
type backend struct {
	name    string
	cluster string // set for a remote cluster
	local   bool   // the local cluster in edge mode
	weight  int64  // a cluster's share at the edge
	eps     []*upstream
	rr      atomic.Uint32
	stats   *versionStats
}

// upstream is one endpoint with its keep-alive pool and health; it
// outlives tables so connections and ejections survive reconfiguration.
type upstream struct {
	addr         string
	hc           *fasthttp.HostClient
	fails        atomic.Int32
	ejections    atomic.Int32
	ejectedUntil atomic.Int64 // unix nanoseconds
}

func (g *Gateway) upstreamLocked(addr string) *upstream {
	if u := g.upstreams[addr]; u != nil {
		return u
	}
	u := &upstream{addr: addr, hc: &fasthttp.HostClient{
		Addr:                          addr,
		MaxConns:                      g.opts.MaxConnsPerEndpoint,
		MaxIdleConnDuration:           90 * time.Second,
		ReadTimeout:                   g.opts.UpstreamTimeout,
		WriteTimeout:                  g.opts.UpstreamTimeout,
		MaxResponseBodySize:           g.opts.MaxBodyBytes,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
		NoDefaultUserAgentHeader:      true,
		// One attempt per endpoint: the gateway itself retries elsewhere,
		// and only on connection failures.
		MaxIdemponentCallAttempts: 1,
		Dial: func(addr string) (net.Conn, error) {
			c, err := fasthttp.DialTimeout(addr, g.opts.DialTimeout)
			if err != nil {
				return nil, err
			}
			return newUpstreamConn(c), nil
		},
	}}
	g.upstreams[addr] = u
	return u
}

// next picks an endpoint round-robin, skipping ejected ones; when every
// endpoint is ejected it uses one anyway (panic mode), since refusing all
// traffic is worse than trying. passedEjected reports that the endpoint
// whose turn it was is ejected and another serves the request.
func (b *backend) next(now int64) (u *upstream, passedEjected bool) {
	n := uint32(len(b.eps))
	if n == 0 {
		return nil, false
	}
	start := b.rr.Add(1)
	for i := range n {
		u := b.eps[(start+i)%n]
		if u.ejectedUntil.Load() <= now {
			return u, i > 0
		}
	}
	return b.eps[start%n], false
}

// healthy reports whether some endpoint is not ejected.
func (b *backend) healthy(now int64) bool {
	for _, u := range b.eps {
		if u.ejectedUntil.Load() <= now {
			return true
		}
	}
	return false
}

// elsewhere picks another remote cluster for a request whose cluster could
// not be reached, so the loss of a whole cluster costs no request that can
// be retried: a cluster with weight and a healthy gateway first, then any
// with weight. Nil when there is none.
func (s *service) elsewhere(failed *backend, now int64) *backend {
	var fallback *backend
	for _, c := range s.clusters {
		if c == failed || c.local || c.weight == 0 || len(c.eps) == 0 {
			continue
		}
		if c.healthy(now) {
			return c
		}
		if fallback == nil {
			fallback = c
		}
	}
	return fallback
}

// rebuildLocked publishes a new table from the desired configuration.
func (g *Gateway) rebuildLocked() {
	old := g.table.Load()
	t := &table{services: make(map[string]*service, len(g.services))}
	used := map[string]bool{}
	for name, sc := range g.services {
		s := &service{name: name, byVersion: map[string]*backend{}, index: map[string]int{}, book: g.book(name), mirror: sc.mirror}
		names := map[string]bool{}
		for v := range sc.endpoints {
			names[v] = true
		}
		for v := range sc.weights {
			names[v] = true
		}
		sorted := make([]string, 0, len(names))
		for v := range names {
			sorted = append(sorted, v)
		}
		sort.Strings(sorted)
		weights := make([]int64, len(sorted))
		for i, v := range sorted {
			b := &backend{name: v, stats: g.statsFor(name, v)}
			for _, ep := range sc.endpoints[v] {
				b.eps = append(b.eps, g.upstreamLocked(ep))
				used[ep] = true
			}
			if len(b.eps) > 0 {
				if sc.weights == nil {
					weights[i] = 1
				} else {
					weights[i] = sc.weights[v]
				}
			}
			s.versions = append(s.versions, b)
			s.byVersion[v] = b
			s.index[v] = i
		}
		s.split = newPicker(weights)
		var oldSvc *service
		if old != nil {
			oldSvc = old.services[name]
		}
		if oldSvc != nil {
			s.split.inherit(oldSvc.split, oldSvc.index, sorted)
		}
		if len(sc.clusters) > 0 {
			cw := make([]int64, len(sc.clusters))
			s.clusterIndex = map[string]int{}
			cnames := make([]string, len(sc.clusters))
			for i, c := range sc.clusters {
				b := &backend{name: "cluster:" + c.Name, cluster: c.Name, local: c.Local, weight: c.Weight, stats: g.statsFor(name, "cluster:"+c.Name)}
				for _, ep := range c.Endpoints {
					b.eps = append(b.eps, g.upstreamLocked(ep))
					used[ep] = true
				}
				cw[i] = c.Weight
				s.clusters = append(s.clusters, b)
				s.clusterIndex[c.Name] = i
				cnames[i] = c.Name
			}
			s.clusterSplit = newPicker(cw)
			if oldSvc != nil && oldSvc.clusterSplit != nil {
				s.clusterSplit.inherit(oldSvc.clusterSplit, oldSvc.clusterIndex, cnames)
			}
		}
		t.services[name] = s
	}
	for _, r := range g.routes {
		s := t.services[r.Service]
		if s == nil {
			// A route may name a service before it has instances: it then
			// answers 503 "no ready instances" rather than 404.
			s = &service{name: r.Service, byVersion: map[string]*backend{}, split: newPicker(nil), book: g.book(r.Service)}
			t.services[r.Service] = s
		}
		t.routes = append(t.routes, compiledRoute{host: []byte(r.Host), prefix: []byte(r.PathPrefix), service: s, name: r.PathPrefix})
	}
	sort.SliceStable(t.routes, func(i, j int) bool { return len(t.routes[i].prefix) > len(t.routes[j].prefix) })
	g.table.Store(t)
	// Drop pools of endpoints no table uses any more. Requests still in
	// flight on them finish: HostClient only closes idle connections.
	for addr, u := range g.upstreams {
		if !used[addr] {
			delete(g.upstreams, addr)
			u.hc.CloseIdleConnections()
		}
	}
}

// match finds the service for a request and the route key of its
// statistics: the matched prefix of an explicit route, else the first
// path segment.
func (t *table) match(host, path []byte, suffix []byte) (*service, []byte) {
	if i := bytes.LastIndexByte(host, ':'); i >= 0 && bytes.IndexByte(host[i:], ']') < 0 {
		host = host[:i]
	}
	for i := range t.routes {
		r := &t.routes[i]
		if (len(r.host) == 0 || bytes.EqualFold(r.host, host)) && bytes.HasPrefix(path, r.prefix) {
			return r.service, r.prefix
		}
	}
	if len(host) <= len(suffix) || !hasSuffixFold(host, suffix) {
		return nil, nil
	}
	name := host[:len(host)-len(suffix)]
	s := t.services[string(name)]
	if s == nil {
		// Hosts arrive in any case; services are lower-case.
		s = t.services[string(bytes.ToLower(name))]
	}
	return s, firstSegment(path)
}

func hasSuffixFold(b, suffix []byte) bool {
	return bytes.EqualFold(b[len(b)-len(suffix):], suffix)
}

func firstSegment(path []byte) []byte {
	if len(path) <= 1 {
		return []byte("/")
	}
	if i := bytes.IndexByte(path[1:], '/'); i >= 0 {
		return path[:i+1]
	}
	return path
}
