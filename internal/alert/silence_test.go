package alert

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const inhibitionRules = `groups:
- name: inhibition
  interval: 200ms
  rules:
  - alert: OrdersErrorBudgetPage
    expr: vector(1)
    labels: {service: orders, slo: availability, severity: page}
  - alert: OrdersErrorBudgetTicket
    expr: vector(1)
    labels: {service: orders, slo: availability, severity: ticket}
  - alert: PaymentsTicket
    expr: vector(1)
    labels: {service: payments, slo: availability, severity: ticket}
  - alert: ClusterDraining
    expr: vector(1)
    labels: {cluster: east, severity: ticket}
  - alert: CartHighLatency
    expr: vector(1)
    labels: {service: cart, cluster: east, severity: page}
  - alert: CartHighLatencyWest
    expr: vector(1)
    labels: {service: cart, cluster: west, severity: page}
  - alert: SearchSlow
    expr: vector(1)
    for: 1h
    labels: {service: search}
`

func alertByName(as []Alert, name string) (Alert, bool) {
	for _, a := range as {
		if a.Name == name {
			return a, true
		}
	}
	return Alert{}, false
}

// TestSilencesAndInhibition: Pave's default inhibit rules (a page
// silences the ticket of the same service and SLO; a cluster draining
// silences its services' alerts), silences with author, comment and
// expiry that say why an alert is quiet, persisted across a restart.
func TestSilencesAndInhibition(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	defer st.Close()
	rules := writeFile(t, filepath.Join(dir, "inh.rules.yml"), inhibitionRules)
	alertDir := filepath.Join(dir, "alerting")
	e := startEngine(t, st, Options{Dir: alertDir, RuleFiles: []string{rules}})
	ctx := context.Background()
	want := map[string]string{
		"OrdersErrorBudgetPage": "firing", "OrdersErrorBudgetTicket": "inhibited", "PaymentsTicket": "firing",
		"ClusterDraining": "firing", "CartHighLatency": "inhibited", "CartHighLatencyWest": "firing", "SearchSlow": "pending", "Watchdog": "firing",
	}
	states := func() (bool, string) {
		as := e.Alerts(ctx)
		got := map[string]string{}
		for _, a := range as {
			got[a.Name] = a.State
		}
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprintf("%v", got)
	}
	eventually(t, 15*time.Second, "states with the default inhibitions", states)
	ticket, _ := alertByName(e.Alerts(ctx), "OrdersErrorBudgetTicket")
	if !strings.Contains(ticket.Why, "OrdersErrorBudgetPage") {
		t.Errorf("why of the inhibited ticket = %q, want the inhibiting page named", ticket.Why)
	}

	// A silence: matchers, author, comment, expiry; the alert says why.
	if _, err := e.AddSilence(ctx, NewSilence{Matchers: "service=payments", EndsAt: time.Now().Add(2 * time.Hour), CreatedBy: "ana", Comment: "DB migration OPS-42"}); err != nil {
		t.Fatal(err)
	}
	want["PaymentsTicket"] = "silenced"
	eventually(t, 5*time.Second, "payments silenced", states)
	pay, _ := alertByName(e.Alerts(ctx), "PaymentsTicket")
	if len(pay.SilencedBy) != 1 || !strings.Contains(pay.Why, "by ana") || !strings.Contains(pay.Why, "DB migration OPS-42") {
		t.Fatalf("silenced alert = %+v", pay)
	}
	for _, bad := range []NewSilence{
		{Matchers: "service=~.*", EndsAt: time.Now().Add(time.Hour), CreatedBy: "ana", Comment: "x"},
		{Matchers: "service=payments", EndsAt: time.Now().Add(-time.Hour), CreatedBy: "ana", Comment: "x"},
		{Matchers: "service=payments", EndsAt: time.Now().Add(time.Hour), CreatedBy: "ana"},
		{Matchers: "=payments", EndsAt: time.Now().Add(time.Hour), CreatedBy: "ana", Comment: "x"},
	} {
		if _, err := e.AddSilence(ctx, bad); err == nil {
			t.Errorf("silence %+v accepted", bad)
		}
	}

	// Silences survive a restart; expiring one brings the alert back.
	e.stop(t)
	e = startEngine(t, st, Options{Dir: alertDir, RuleFiles: []string{rules}})
	defer e.stop(t)
	sils, err := e.Silences(ctx)
	if err != nil || len(sils) != 1 || sils[0].State != "active" || sils[0].CreatedBy != "ana" || sils[0].Matchers[0] != `service="payments"` {
		t.Fatalf("silences after a restart: %+v %v", sils, err)
	}
	eventually(t, 15*time.Second, "payments still silenced after the restart", states)
	if err := e.ExpireSilence(ctx, sils[0].ID); err != nil {
		t.Fatal(err)
	}
	want["PaymentsTicket"] = "firing"
	eventually(t, 5*time.Second, "payments firing after the silence expired", states)
	if err := e.ExpireSilence(ctx, "no-such-id"); err == nil {
		t.Fatal("expiring an unknown silence succeeded")
	}
}
