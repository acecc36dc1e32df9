package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/gateway"
	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/state"
	"github.com/pave-platform/pave/internal/stats"
	"github.com/pave-platform/pave/internal/traffic"
)

// upstream serves one version on loopback; every failEvery-th request is a 500.
func upstream(t *testing.T, failEvery int64) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if i := n.Add(1); failEvery > 0 && i%failEvery == 0 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), &n
}

// TestRealTimeThroughTheGateway runs the engine on the wall clock against
// the real embedded gateway, its router provider and the SQLite store,
// with real HTTP traffic: a canary that fails 1 request in 3 is rolled
// back and then gets no more traffic; a healthy one is promoted.
func TestRealTimeThroughTheGateway(t *testing.T) {
	for _, tc := range []struct {
		name      string
		failEvery int64
		want      release.Phase
	}{
		{"bad canary", 3, release.RolledBack},
		{"healthy canary", 50, release.Promoted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			store, err := state.OpenSQLite(filepath.Join(t.TempDir(), "state.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()

			v1, _ := upstream(t, 50)
			v2, v2hits := upstream(t, tc.failEvery)
			gw := gateway.New(gateway.Options{})
			gw.SetEndpoints("shop", "v1", []string{v1})
			gw.SetEndpoints("shop", "v2", []string{v2})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go gw.Serve(ctx, ln)
			router, err := traffic.NewGatewayRouter(ctx, store, gw, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := router.SetWeights(ctx, "shop", traffic.Weights{"v1": traffic.Total}); err != nil {
				t.Fatal(err)
			}
			metrics := release.MetricsFunc(func(_ context.Context, s string) (stats.Snapshot, error) { return gw.Snapshot(s), nil })
			eng := release.NewEngine(store, router, simTarget{}, metrics)

			// Bounded load: four keep-alive clients until the test ends.
			var wg sync.WaitGroup
			loadCtx, stopLoad := context.WithCancel(ctx)
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := &http.Client{Timeout: 5 * time.Second}
					for loadCtx.Err() == nil {
						req, _ := http.NewRequestWithContext(loadCtx, "GET", "http://"+ln.Addr().String()+"/", nil)
						req.Host = "shop.localhost"
						if resp, err := c.Do(req); err == nil {
							io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
						}
						time.Sleep(2 * time.Millisecond)
					}
				}()
			}
			defer func() { stopLoad(); wg.Wait() }()

			r := release.New("shop", "v2")
			r.Spec.Binary = "/srv/shop-v2"
			r.Spec.Steps = []release.Percent{50_000, 500_000, 1_000_000}
			r.Spec.StepDuration = release.Duration(time.Second)
			r.Spec.StepSamples = 20
			r.Spec.ScaleDownDelay = release.Duration(time.Second)
			if _, err := eng.Create(ctx, r); err != nil {
				t.Fatal(err)
			}
			go eng.Run(ctx, 200*time.Millisecond)
			final, err := eng.Wait(ctx, "shop-v2", 100*time.Millisecond, nil)
			if err != nil {
				t.Fatalf("waiting: %v (last: %s %s)", err, final.Status.Phase, final.Status.Message)
			}
			if final.Status.Phase != tc.want {
				t.Fatalf("ended %s, want %s: %s", final.Status.Phase, tc.want, final.Status.Message)
			}
			w := gw.Weights("shop")
			if tc.want == release.RolledBack {
				if w["v2"] != 0 {
					t.Fatalf("gateway weights after rollback: %v", w)
				}
				before := v2hits.Load()
				time.Sleep(500 * time.Millisecond)
				if after := v2hits.Load(); after != before {
					t.Fatalf("the rolled-back version still got %d requests", after-before)
				}
			} else if w["v2"] != traffic.Total {
				t.Fatalf("gateway weights after promotion: %v", w)
			}
		})
	}
}
