package release

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAlerts is the alert seam: the alerts a test makes fire.
type fakeAlerts struct {
	mu     sync.Mutex
	firing []FiringAlert
	err    error
	asked  []string
}

func (f *fakeAlerts) Firing(_ context.Context, service string) ([]FiringAlert, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, service)
	var out []FiringAlert
	for _, a := range f.firing {
		if a.Labels["service"] == service {
			out = append(out, a)
		}
	}
	return out, f.err
}

func (f *fakeAlerts) fire(a FiringAlert) {
	f.mu.Lock()
	f.firing = append(f.firing, a)
	f.mu.Unlock()
}

func alertRig(t *testing.T) (*rig, *fakeAlerts) {
	r := newRig(t)
	fa := &fakeAlerts{}
	r.eng = NewEngine(r.store, r.router, r.target, r.metrics, WithClock(r.clock), WithAlerts(fa))
	r.metrics.errors["v1"], r.metrics.errors["v2"] = 0.01, 0.01
	return r, fa
}

func TestAlertFiringDuringTheReleaseRollsItBack(t *testing.T) {
	r, fa := alertRig(t)
	rel := testRelease()
	rel.Spec.Analysis.AbortOnAlerts = []string{"severity=page", "ShopCheckoutBroken"}
	r.create(rel)
	started := r.runUntil("shop-v2", 1000, 30, phaseIs(Progressing))
	if r.router.get("shop", "v2") == 0 {
		t.Fatal("the canary has no traffic")
	}
	at := r.clock.Now()
	// Alerts that must not abort: another service's, a ticket, a silenced
	// page, and a page already active before the canary got traffic.
	fa.fire(FiringAlert{Name: "CartDown", Labels: map[string]string{"alertname": "CartDown", "service": "cart", "severity": "page"}, ActiveAt: at})
	fa.fire(FiringAlert{Name: "ShopSlow", Labels: map[string]string{"alertname": "ShopSlow", "service": "shop", "severity": "ticket"}, ActiveAt: at})
	fa.fire(FiringAlert{Name: "ShopDown", Labels: map[string]string{"alertname": "ShopDown", "service": "shop", "severity": "page"}, ActiveAt: at, Silenced: true})
	fa.fire(FiringAlert{Name: "ShopOld", Labels: map[string]string{"alertname": "ShopOld", "service": "shop", "severity": "page"},
		ActiveAt: started.Status.Started.Add(-time.Minute)})
	for range 3 {
		r.tick(1000)
	}
	if p := r.get("shop-v2").Status.Phase; p.Terminal() {
		t.Fatalf("ended (%s) on alerts abortOnAlerts does not select: %s", p, r.get("shop-v2").Status.Message)
	}
	// The alert named in abortOnAlerts (a bare name, no severity) fires.
	fa.fire(FiringAlert{Name: "ShopCheckoutBroken", Labels: map[string]string{"alertname": "ShopCheckoutBroken", "service": "shop", "route": "/checkout"},
		ActiveAt: at, FiredAt: at.Add(time.Second), Summary: "checkout fails"})
	r.tick(1000)
	got := r.get("shop-v2")
	if got.Status.Phase != RolledBack {
		t.Fatalf("phase %s, want rolled back: %s", got.Status.Phase, got.Status.Message)
	}
	for _, want := range []string{"aborted: alert ShopCheckoutBroken firing for shop", "route=/checkout", `"ShopCheckoutBroken"`, "checkout fails"} {
		if !strings.Contains(got.Status.Message, want) {
			t.Errorf("message %q lacks %q", got.Status.Message, want)
		}
	}
	if w := r.router.get("shop", "v2"); w != 0 {
		t.Fatalf("canary keeps weight %d after the abort", w)
	}
}

func TestAlertsWithoutAbortOnAlertsOrWithAFailingSeamDoNotStopTheRelease(t *testing.T) {
	r, fa := alertRig(t)
	r.create(testRelease()) // no abortOnAlerts
	r.runUntil("shop-v2", 1000, 30, phaseIs(Progressing))
	fa.fire(FiringAlert{Name: "ShopDown", Labels: map[string]string{"alertname": "ShopDown", "service": "shop", "severity": "page"}, ActiveAt: r.clock.Now()})
	final := r.runUntil("shop-v2", 1000, 300, func(x Release) bool { return x.Status.Phase.Terminal() })
	if final.Status.Phase != Promoted {
		t.Fatalf("without abortOnAlerts an alert ended the release: %s %s", final.Status.Phase, final.Status.Message)
	}
	if len(fa.asked) != 0 {
		t.Errorf("the seam was asked %d times without abortOnAlerts", len(fa.asked))
	}

	r2, fa2 := alertRig(t)
	fa2.err = errors.New("alert engine unavailable")
	rel := testRelease()
	rel.Spec.Analysis.AbortOnAlerts = []string{"severity=page"}
	r2.create(rel)
	final = r2.runUntil("shop-v2", 1000, 300, func(x Release) bool { return x.Status.Phase.Terminal() })
	if final.Status.Phase != Promoted || len(fa2.asked) == 0 {
		t.Fatalf("a failing alert seam: %s %s (asked %d times)", final.Status.Phase, final.Status.Message, len(fa2.asked))
	}
}

func TestAbortOnAlertsIsValidated(t *testing.T) {
	for _, tc := range []struct {
		entries []string
		path    string
	}{
		{[]string{"severity=page", ""}, "spec.analysis.abortOnAlerts[1]"},
		{[]string{"severity=~.*"}, "spec.analysis.abortOnAlerts[0]"},
		{[]string{"9lives"}, "spec.analysis.abortOnAlerts[0]"},
		{[]string{`severity="page`}, "spec.analysis.abortOnAlerts[0]"},
	} {
		rel := testRelease()
		rel.Spec.Analysis.AbortOnAlerts = tc.entries
		err := rel.Validate()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Path != tc.path || !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: got %v, want an error at %s", tc.entries, err, tc.path)
		}
	}
	rel, err := Parse([]byte(`apiVersion: pave.dev/v1alpha1
kind: Release
spec:
  service: shop
  version: v2
  binary: /srv/shop
  analysis:
    abortOnAlerts: [ShopDown, 'severity=page,slo="availability"', '{alertname=~"Shop.*"}']
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := rel.Spec.Analysis.AbortOnAlerts; len(got) != 3 {
		t.Fatalf("abortOnAlerts %q", got)
	}
	m, _ := ParseAlertMatcher("ShopDown")
	if !m.Matches(FiringAlert{Name: "ShopDown", Labels: map[string]string{"service": "shop"}}) ||
		m.Matches(FiringAlert{Name: "ShopDownstream", Labels: map[string]string{"alertname": "ShopDownstream"}}) {
		t.Fatal("a bare name must match that alert name exactly")
	}
}

func FuzzParseAlertMatcher(f *testing.F) {
	for _, s := range []string{"ShopDown", "severity=page", `{alertname=~"Shop.*",severity!="ticket"}`, "a=~.*", "", "9x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseAlertMatcher(s)
		if err != nil {
			return
		}
		if len(m) == 0 {
			t.Fatalf("%q accepted without matchers", s)
		}
		if m.Matches(FiringAlert{Labels: map[string]string{}}) {
			t.Fatalf("%q accepted, yet it matches an alert without labels", s)
		}
	})
}
