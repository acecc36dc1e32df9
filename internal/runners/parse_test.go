package runners

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const example = `
apiVersion: pave.dev/v1alpha1
kind: RunnerPool
metadata: {name: linux}
spec:
  labels: [self-hosted, linux]
  min: 1
  max: 20
  target: {local: {}}
  runnerHoursPerDay: 150
  schedules:
  - {cron: "0 9 * * 1-5", timeZone: Asia/Seoul, duration: 10h, min: 12, spare: 3}
`

func TestParseExample(t *testing.T) {
	p, err := Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	s := p.Spec
	if p.Metadata.Name != "linux" || s.Min != 1 || s.Max != 20 || s.Target.Local == nil || len(s.Labels) != 2 {
		t.Fatalf("parsed %+v", p)
	}
	sc := s.Schedules[0]
	if sc.Duration.Duration != 10*time.Hour || sc.Min != 12 || sc.Spare != 3 || sc.TimeZone != "Asia/Seoul" {
		t.Fatalf("schedule %+v", sc)
	}
	if s.IdleTimeout.Duration != 10*time.Minute || s.QueueWaitTarget.Duration != 30*time.Second || !*s.QueueScaleUp || s.BudgetTimeZone != "UTC" {
		t.Fatalf("defaults not applied: %+v", s)
	}
}

func TestParseRefusesWithFieldPath(t *testing.T) {
	cases := []struct {
		name, old, new, path, says string
	}{
		{"bad cron", `"0 9 * * 1-5"`, `"0 25 * * 1-5"`, "spec.schedules[0].cron", "0 9 * * 1-5"},
		{"six fields", `"0 9 * * 1-5"`, `"0 0 9 * * 1-5"`, "spec.schedules[0].cron", "five fields"},
		{"tz in expression", `"0 9 * * 1-5"`, `"CRON_TZ=UTC 0 9 * * *"`, "spec.schedules[0].cron", "timeZone"},
		{"every", `"0 9 * * 1-5"`, `"@every 1h"`, "spec.schedules[0].cron", "@every"},
		{"bad time zone", "Asia/Seoul", "Mars/Olympus", "spec.schedules[0].timeZone", "IANA"},
		{"Local zone", "Asia/Seoul", "Local", "spec.schedules[0].timeZone", "IANA"},
		{"bad duration", "duration: 10h", "duration: ten", "spec.schedules[0].duration", "duration"},
		{"zero duration", "duration: 10h", "duration: 0s", "spec.schedules[0].duration", "1m to 168h"},
		{"schedule min above max", "min: 12", "min: 21", "spec.schedules[0].min", "spec.max"},
		{"unknown field", "min: 12", "mni: 12", "spec.schedules[0].mni", "known fields here"},
		{"min above max", "min: 1\n", "min: 30\n", "spec.min", "above spec.max"},
		{"no target", "target: {local: {}}", "target: {}", "spec.target", "one of local"},
		{"both targets", "target: {local: {}}", "target: {local: {}, kubernetes: {cluster: a, autoscalingRunnerSet: ns/x}}", "spec.target", "not both"},
		{"bad runner set", "target: {local: {}}", "target: {kubernetes: {cluster: a, autoscalingRunnerSet: x}}", "spec.target.kubernetes.autoscalingRunnerSet", "NAMESPACE/NAME"},
		{"wrong type", "max: 20", "max: twenty", "spec.max", "want a int"},
		{"bad kind", "kind: RunnerPool", "kind: Release", "kind", "RunnerPool"},
		{"bad name", "name: linux", "name: Linux_1", "metadata.name", "DNS label"},
		{"negative budget", "runnerHoursPerDay: 150", "runnerHoursPerDay: -1", "spec.runnerHoursPerDay", "0 (no cap)"},
		{"label with space", "[self-hosted, linux]", "[self-hosted, 'a b']", "spec.labels[1]", "without spaces"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := strings.Replace(example, c.old, c.new, 1)
			if doc == example {
				t.Fatalf("test case does not change the document: %q", c.old)
			}
			_, err := Parse([]byte(doc))
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("want a FieldError wrapping ErrInvalid, got %v", err)
			}
			if fe.Path != c.path || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("want path %s saying %q, got %v", c.path, c.says, err)
			}
		})
	}
}

func TestParseRefusesNonMapping(t *testing.T) {
	for _, doc := range []string{"", "- a", "42", "{"} {
		if _, err := Parse([]byte(doc)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: want ErrInvalid, got %v", doc, err)
		}
	}
}

// FuzzParse: Parse never panics, and whatever it accepts is valid and
// gives a decision within [min, max].
func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte(strings.Replace(example, "0 9 * * 1-5", "*/7 1-5,9 L * MON-FRI", 1)))
	f.Add([]byte(strings.Replace(example, "0 9 * * 1-5", "@daily", 1)))
	f.Add([]byte(`{"apiVersion":"pave.dev/v1alpha1","kind":"RunnerPool","metadata":{"name":"a"},"spec":{"max":1,"target":{"local":{}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("accepted a pool that does not validate: %v", err)
		}
		now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
		d := p.Spec.Desire(Observation{Now: now, Queued: 5, Busy: 3})
		if d.Desired < p.Spec.Min || d.Desired > p.Spec.Max {
			t.Fatalf("desired %d outside [%d, %d]", d.Desired, p.Spec.Min, p.Spec.Max)
		}
	})
}
