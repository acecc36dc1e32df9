package runners

import (
	"testing"
	"time"
)

var simOpt = SimOptions{StartUp: time.Minute, Tick: 5 * time.Second}

func TestSimulateQueueOnlyWaitsForStartUp(t *testing.T) {
	s := pool(t, `{"apiVersion":"pave.dev/v1alpha1","kind":"RunnerPool","metadata":{"name":"a"},"spec":{"max":5,"target":{"local":{}}}}`)
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	jobs := []Job{{Queued: at, Duration: 5 * time.Minute}, {Queued: at.Add(6 * time.Minute), Duration: time.Minute}}
	r := Simulate(&s, jobs, simOpt)
	if r.Waits[0] != time.Minute {
		t.Fatalf("first job: want the 60 s start-up, got %s", r.Waits[0])
	}
	if r.Waits[1] != 0 {
		t.Fatalf("second job reuses the idle runner: want 0, got %s", r.Waits[1])
	}
	// One runner: 1m start-up + 5m job + 1m job + 10m idle timeout (+ up to one tick).
	if h := r.RunnerHours * 60; h < 17 || h > 17.1 {
		t.Fatalf("runner-minutes: want about 17, got %.2f", h)
	}
}

func TestSimulateSpareRemovesTheWait(t *testing.T) {
	s := pool(t, example)                             // spare 3 from 09:00 Seoul on weekdays
	at := time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC) // 11:00 Seoul
	jobs := []Job{{Queued: at.Add(-time.Hour), Duration: time.Minute}, {Queued: at, Duration: time.Minute}, {Queued: at, Duration: time.Minute}}
	r := Simulate(&s, jobs, simOpt)
	if r.Waits[1] != 0 || r.Waits[2] != 0 {
		t.Fatalf("warm runners: want no wait, got %v", r.Waits)
	}
	if r.PeakRunners < 12 {
		t.Fatalf("the window's floor is 12, peak %d", r.PeakRunners)
	}
}

func TestSimulateIsDeterministic(t *testing.T) {
	s := pool(t, example)
	var jobs []Job
	at := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	for i := range 500 {
		jobs = append(jobs, Job{Queued: at.Add(time.Duration(i*i%86400) * time.Second / 3), Duration: time.Duration(30+i%400) * time.Second})
	}
	sortByQueued(jobs)
	a, b := Simulate(&s, jobs, simOpt), Simulate(&s, jobs, simOpt)
	if a.RunnerHours != b.RunnerHours || a.Percentile(0.95) != b.Percentile(0.95) {
		t.Fatalf("two replays differ: %v/%v vs %v/%v", a.RunnerHours, a.Percentile(0.95), b.RunnerHours, b.Percentile(0.95))
	}
}

func sortByQueued(jobs []Job) {
	for i := 1; i < len(jobs); i++ {
		for j := i; j > 0 && jobs[j].Queued.Before(jobs[j-1].Queued); j-- {
			jobs[j], jobs[j-1] = jobs[j-1], jobs[j]
		}
	}
}

// A daily burst at 10:00 UTC: Suggest must find a warm window around it
// that meets the target, cheaper than a flat all-day spare that also does.
func TestSuggestLearnsTheBurstHour(t *testing.T) {
	base, err := Parse([]byte(`{"apiVersion":"pave.dev/v1alpha1","kind":"RunnerPool","metadata":{"name":"a"},"spec":{"max":50,"target":{"local":{}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	var jobs []Job
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	for d := range 5 {
		for i := range 8 { // 8 jobs within a minute at 10:00, two hours apart otherwise
			jobs = append(jobs, Job{Queued: day.AddDate(0, 0, d).Add(10*time.Hour + time.Duration(i)*7*time.Second), Duration: 3 * time.Minute})
		}
	}
	got, err := Suggest(base, "UTC", jobs, simOpt)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Met || got.P95 > 27*time.Second {
		t.Fatalf("want p95 under 90%% of 30 s, got %+v", got)
	}
	var covers bool
	for _, s := range got.Schedules {
		if s.Active(day.Add(10*time.Hour)) && s.Spare > 0 {
			covers = true
		}
	}
	if !covers {
		t.Fatalf("no learned window covers 10:00: %+v", got.Schedules)
	}
	flat := base
	flat.Spec.Schedules = []Schedule{{Cron: "0 0 * * *", TimeZone: "UTC", Duration: Duration{24 * time.Hour}, Spare: 8}}
	if err := flat.Validate(); err != nil {
		t.Fatal(err)
	}
	if f := Simulate(&flat.Spec, jobs, simOpt); got.RunnerHours >= f.RunnerHours {
		t.Fatalf("learned %.1f runner-hours, not cheaper than a flat all-day spare %.1f", got.RunnerHours, f.RunnerHours)
	}
}
