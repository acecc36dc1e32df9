package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/pave-platform/pave/internal/shadow"
	"github.com/pave-platform/pave/internal/traffic"
)

// Shadow simulates the embedded gateway's mirror in one cluster: while
// the release asks for it (traffic.Mirror, set through the router), each
// of stable's mirrorable requests (GET and HEAD, and the routes marked
// safe; a share of them when the mirror says so) is answered at once by
// the canary and twice by stable, independently of the user's answer, and
// the three answers go to the real comparison (shadow.Recorder, as in
// internal/gateway/mirror.go). The engine reads the recorder's snapshots
// through the cluster's PairSource, as it reads the gateway's.
//
// Answers carry JSON bodies with two noise fields, as real services'
// do: $.servedAt (a clock in milliseconds, differing between two answers
// two times in three) and $.cache ("hit", or "miss" one time in ten),
// in every version alike: the comparison must learn them from the two
// stables and never blame the canary for them. A canary with a
// WrongRate changes the order's $.total on that share of its 200s.
//
// The simulated mirror never drops a copy: at the benchmark's rates its
// queue (1,024 copies in the gateway) never fills.
type Shadow struct {
	rec    *shadow.Recorder
	rng    *rand.Rand
	canary func(route int) Behaviour
	env    Behaviour
	seq    uint64
	// NotSafe counts the requests never mirrored because their route
	// changes state and is not marked safe.
	NotSafe uint64
}

func newShadow(seed uint64, canary func(route int) Behaviour, env Behaviour) *Shadow {
	rec, err := shadow.NewRecorder(shadow.Options{}, nil)
	if err != nil {
		panic(err)
	}
	return &Shadow{rec: rec, rng: rand.New(rand.NewPCG(seed^0xa5a5a5a5, seed+17)), canary: canary, env: env}
}

// Pairs implements release.PairSource.
func (s *Shadow) Pairs(context.Context, string) (shadow.Snapshot, error) {
	return s.rec.Snapshot(), nil
}

// mirror copies one request of stable's on route ri, if the mirror takes it.
func (s *Shadow) mirror(ri int, m *traffic.Mirror, drift float64) {
	name := Routes[ri].Name
	method, path, _ := strings.Cut(name, " ")
	if !shadow.Mirrorable(method, name, path, m.Settings.SafeRoutes) {
		s.NotSafe++
		s.rec.Counted(false, false, false, true)
		return
	}
	if m.Share > 0 && m.Share < traffic.Total && s.rng.Int64N(traffic.Total) >= m.Share {
		return
	}
	s.rec.Counted(true, false, false, false)
	s.seq++
	base := Behaviour{ErrorRate: stableErrorRate, LatencyScale: 1}
	primary := s.answer(ri, base, drift)
	secondary := s.answer(ri, base, drift)
	candidate := s.answer(ri, s.canary(ri), drift)
	s.rec.Record(name, fmt.Sprintf("%032x", s.seq), primary, secondary, candidate)
}

// answer is one version's answer to the current mirrored request.
func (s *Shadow) answer(ri int, b Behaviour, drift float64) *shadow.Answer {
	envScale := s.env.LatencyScale
	if envScale == 0 {
		envScale = 1
	}
	ms := latencyMedianMs * b.LatencyScale * envScale * drift * math.Exp(latencySigma*s.rng.NormFloat64())
	if s.rng.Float64() < (b.ErrorRate+s.env.ErrorRate)*drift {
		return &shadow.Answer{Status: 500, LatencyMs: ms, Body: []byte(`{"error":"internal"}`)}
	}
	servedAt := 1_767_225_600_000 + int64(s.seq)*100 + s.rng.Int64N(3)
	cache := "hit"
	if s.rng.Float64() < 0.1 {
		cache = "miss"
	}
	var body string
	switch ri {
	case 0: // GET /v1/orders/{id}
		cents := 100 + s.seq*7919%90_000
		if b.WrongRate > 0 && s.rng.Float64() < b.WrongRate {
			cents++ // a rounding change: the wrong amount
		}
		body = fmt.Sprintf(`{"id":"o-%d","total":"%d.%02d","currency":"EUR","servedAt":%d,"cache":%q}`, s.seq, cents/100, cents%100, servedAt, cache)
	case 1: // GET /v1/items
		body = fmt.Sprintf(`{"items":[{"sku":"a-1","price":"9.90"},{"sku":"b-2","price":"4.50"}],"servedAt":%d,"cache":%q}`, servedAt, cache)
	default:
		body = fmt.Sprintf(`{"paid":true,"servedAt":%d}`, servedAt)
	}
	return &shadow.Answer{Status: 200, LatencyMs: ms, Body: []byte(body)}
}
