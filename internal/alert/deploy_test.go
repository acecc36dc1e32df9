package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pave-platform/pave/internal/release"
	"github.com/pave-platform/pave/internal/release/releasetest"
	"github.com/pave-platform/pave/internal/stats"
)

// TestAlertOnTheCanarysErrorsAbortsTheRelease drives the real rules
// manager and the real release engine together: once the canary gets
// traffic its error ratio series rises, the rule fires, the release
// (abortOnAlerts: severity=page) is rolled back naming the alert, and the
// alert names the release and version in `pave alerts`' view and in the
// webhook notification.
func TestAlertOnTheCanarysErrorsAbortsTheRelease(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	defer st.Close()

	var mu sync.Mutex
	var got []webhookMessage
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m webhookMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("webhook body: %v: %s", err, b)
		}
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	})}
	go hs.Serve(ln)
	defer hs.Close()
	amConfig := writeFile(t, filepath.Join(dir, "alerting.yml"), `route:
  receiver: hook
  group_by: [alertname, service]
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
- name: hook
  webhook_configs:
  - url: http://`+ln.Addr().String()+`/hook
`)
	ruleFile := writeFile(t, filepath.Join(dir, "shop.rules.yml"), `groups:
- name: shop
  interval: 200ms
  rules:
  - alert: ShopVersionErrors
    expr: max by (service, version) (pave_test_error_ratio{service="shop"}) > 0.1
    labels: {severity: page}
    annotations: {summary: '{{ $labels.service }}@{{ $labels.version }} fails {{ $value | humanizePercentage }} of its requests'}
`)
	te := startEngine(t, st, Options{Dir: filepath.Join(dir, "alerting"), ConfigFile: amConfig, RuleFiles: []string{ruleFile}})
	defer te.stop(t)

	rig := releasetest.NewRig(t, nil)
	noTraffic := release.MetricsFunc(func(context.Context, string) (stats.Snapshot, error) { return stats.Snapshot{}, nil })
	eng := release.NewEngine(rig.Store, rig.Router, releasetest.ReadyTarget{}, noTraffic, release.WithAlerts(ReleaseSeam{Engine: te.Engine}))
	te.SetReleases(ReleaseLookup{Engine: eng})
	ctx := context.Background()

	// Stable's errors were already high before the release: an alert
	// active before the canary got traffic never aborts it.
	stop := make(chan struct{})
	fed := make(chan struct{})
	defer func() { close(stop); <-fed }()
	var canaryErrors sync.Once
	canary := make(chan struct{})
	go func() {
		defer close(fed)
		canaryOn := false
		for {
			appendNow(t, st, 0.3, "__name__", "pave_test_error_ratio", "service", "shop", "version", "v1")
			select {
			case <-canary:
				canaryOn = true
			default:
			}
			if canaryOn {
				appendNow(t, st, 0.5, "__name__", "pave_test_error_ratio", "service", "shop", "version", "v2")
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	eventually(t, 20*time.Second, "stable's alert firing before the release", func() (bool, string) {
		return len(te.Firing(ctx, "shop")) > 0, fmt.Sprintf("%+v", te.Alerts(ctx))
	})

	rel := release.New("shop", "v2")
	rel.Spec.Binary = "/srv/shop-v2"
	rel.Spec.StepDuration = release.Duration(time.Hour) // only an alert can end it
	rel.Spec.Analysis.AbortOnAlerts = []string{"severity=page"}
	if _, err := eng.Create(ctx, rel); err != nil {
		t.Fatal(err)
	}
	var final release.Release
	eventually(t, 60*time.Second, "the release rolled back on the canary's alert", func() (bool, string) {
		if err := eng.Reconcile(ctx); err != nil {
			return false, err.Error()
		}
		r, err := eng.Get(ctx, "shop-v2")
		if err != nil {
			return false, err.Error()
		}
		if r.Status.Phase == release.Progressing {
			canaryErrors.Do(func() { close(canary) })
		}
		final = r
		return r.Status.Phase.Terminal(), string(r.Status.Phase) + ": " + r.Status.Message
	})
	if final.Status.Phase != release.RolledBack || !strings.Contains(final.Status.Message, "aborted: alert ShopVersionErrors firing for shop (severity=page,version=v2)") ||
		!strings.Contains(final.Status.Message, "shop@v2 fails 50% of its requests") {
		t.Fatalf("release ended %s: %s", final.Status.Phase, final.Status.Message)
	}
	if w, _ := rig.Router.Weights(ctx, "shop"); w["v2"] != 0 {
		t.Fatalf("the canary keeps weight after the abort: %v", w)
	}

	// The alert names the release and version, in the view...
	var v2 Alert
	for _, a := range te.Alerts(ctx) {
		if a.Labels["version"] == "v2" {
			v2 = a
		}
	}
	if v2.Release == nil || v2.Release.Name != "shop-v2" || v2.Release.Version != "v2" || v2.Annotations["release_url"] == "" ||
		!strings.Contains(v2.Why, "during release shop-v2 of version v2") {
		t.Fatalf("the canary's alert does not name its release: %+v", v2)
	}
	// ...and in the notification.
	eventually(t, 30*time.Second, "the webhook notified of the alert with its release", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range got {
			for _, a := range m.Alerts {
				if a.Labels["version"] == "v2" && a.Annotations["release"] == "shop-v2" && a.Annotations["release_version"] == "v2" &&
					strings.HasSuffix(a.Annotations["release_url"], "/ui/releases.html?name=shop-v2") {
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("%+v", got)
	})
}
