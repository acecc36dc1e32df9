package gateway

import (
	"net/netip"
	"sync"
	"time"
)

// Version pinning (the version header) and sticky routing let a client
// choose its version. Honoured for anyone, they let anyone aim failing
// requests at a canary (forcing a rollback) or reach a version that is
// not released; a sticky key is no better, since its hash is public and a
// client can pick keys that land on the canary. So both are honoured only
// for trusted clients: those whose address is in Options.PinNetworks
// (default: loopback, so local development keeps working) and those that
// present a tester credential in Options.TesterHeader which
// Options.TesterCheck accepts (pave up: a token of role deployer or
// higher). For anyone else the version header is stripped and the sticky
// key ignored, and the request takes the weighted split. Honoured or not,
// such requests are counted apart from the judged traffic (stats.Version.Unjudged).

// defaultPinNetworks is loopback only.
var defaultPinNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// testerCacheTTL bounds how long a tester credential's verdict is reused,
// so a token check (a store read) is not made on every pinned request; a
// revoked token stops working within it.
const testerCacheTTL = 30 * time.Second

const testerCacheMax = 1024

// trust decides whether a client may choose its version.
type trust struct {
	nets  []netip.Prefix
	check func(token string) bool

	mu    sync.Mutex
	cache map[string]testerVerdict
}

type testerVerdict struct {
	ok    bool
	until int64
}

func newTrust(nets []netip.Prefix, check func(string) bool) *trust {
	if nets == nil {
		nets = defaultPinNetworks
	}
	return &trust{nets: nets, check: check, cache: map[string]testerVerdict{}}
}

// allows reports whether a client at addr presenting token (empty: none)
// may pin or stick to a version.
func (t *trust) allows(addr netip.Addr, token []byte, now int64) bool {
	addr = addr.Unmap()
	for _, p := range t.nets {
		if p.Contains(addr) {
			return true
		}
	}
	if len(token) == 0 || t.check == nil {
		return false
	}
	t.mu.Lock()
	v, ok := t.cache[string(token)]
	t.mu.Unlock()
	if ok && v.until > now {
		return v.ok
	}
	allowed := t.check(string(token))
	t.mu.Lock()
	if len(t.cache) >= testerCacheMax {
		clear(t.cache)
	}
	t.cache[string(token)] = testerVerdict{ok: allowed, until: now + int64(testerCacheTTL)}
	t.mu.Unlock()
	return allowed
}
