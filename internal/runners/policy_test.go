package runners

import (
	"testing"
	"time"
)

func pool(t *testing.T, doc string) Spec {
	t.Helper()
	p, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return p.Spec
}

func TestDesireScheduleWindowInTimeZone(t *testing.T) {
	s := pool(t, example) // 09:00 Mon-Fri Asia/Seoul for 10h: floor 12, spare 3
	seoul, _ := time.LoadLocation("Asia/Seoul")
	cases := []struct {
		at          time.Time
		busy, queue int
		want        int
		window      bool
	}{
		{time.Date(2026, 3, 2, 8, 59, 0, 0, seoul), 0, 0, 1, false}, // Monday before the window: min
		{time.Date(2026, 3, 2, 9, 0, 0, 0, seoul), 0, 0, 12, true},  // opens at 09:00 Seoul
		{time.Date(2026, 3, 2, 0, 30, 0, 0, time.UTC), 0, 0, 12, true},
		{time.Date(2026, 3, 2, 18, 59, 0, 0, seoul), 10, 2, 15, true}, // busy+queued+spare above the floor
		{time.Date(2026, 3, 2, 19, 0, 0, 0, seoul), 0, 0, 1, false},   // closes at 19:00
		{time.Date(2026, 3, 7, 10, 0, 0, 0, seoul), 0, 0, 1, false},   // Saturday
		{time.Date(2026, 3, 7, 10, 0, 0, 0, seoul), 4, 3, 7, false},   // queue scale-up outside windows, no spare
		{time.Date(2026, 3, 2, 12, 0, 0, 0, seoul), 19, 9, 20, true},  // capped at max
	}
	for _, c := range cases {
		d := s.Desire(Observation{Now: c.at, Busy: c.busy, Queued: c.queue})
		if d.Desired != c.want || (len(d.Windows) > 0) != c.window {
			t.Errorf("%s busy %d queued %d: got %+v, want %d (window %v)", c.at, c.busy, c.queue, d, c.want, c.window)
		}
	}
}

func TestDesireBudgetDropsWarmCapacityOnly(t *testing.T) {
	s := pool(t, example)                             // 150 runner-hours a day
	at := time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC) // 11:00 Seoul, in the window
	if d := s.Desire(Observation{Now: at, Busy: 2, RunnerHoursToday: 149}); d.Desired != 12 || d.BudgetExhausted {
		t.Fatalf("under budget: %+v", d)
	}
	d := s.Desire(Observation{Now: at, Busy: 2, Queued: 3, RunnerHoursToday: 150})
	if !d.BudgetExhausted || d.Desired != 5 {
		t.Fatalf("budget spent: want busy+queued = 5 and the flag, got %+v", d)
	}
}

func TestDesireQueueScaleUpOff(t *testing.T) {
	s := pool(t, example+"  queueScaleUp: false\n")
	at := time.Date(2026, 3, 7, 1, 0, 0, 0, time.UTC)
	if d := s.Desire(Observation{Now: at, Busy: 2, Queued: 5}); d.Desired != 2 {
		t.Fatalf("queue scale-up off: want busy only (2), got %+v", d)
	}
}

func TestDesireIsDeterministic(t *testing.T) {
	s := pool(t, example)
	at := time.Date(2026, 3, 3, 3, 0, 0, 0, time.UTC)
	o := Observation{Now: at, Busy: 7, Queued: 2, RunnerHoursToday: 10}
	first := s.Desire(o)
	for range 100 {
		if d := s.Desire(o); d.Desired != first.Desired || d.Floor != first.Floor || d.Spare != first.Spare {
			t.Fatalf("%+v then %+v", first, d)
		}
	}
}

func TestRetirableOnlyAfterIdleTimeoutAndAboveDesired(t *testing.T) {
	s := pool(t, example) // idle timeout 10m
	now := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	idle := []time.Time{now.Add(-30 * time.Minute), now.Add(-11 * time.Minute), now.Add(-5 * time.Minute)}
	if n := s.Retirable(now, 10, 7, idle); n != 2 {
		t.Fatalf("want the two long-idle runners, got %d", n)
	}
	if n := s.Retirable(now, 10, 9, idle); n != 1 {
		t.Fatalf("want one (10 → desired 9), got %d", n)
	}
	if n := s.Retirable(now, 10, 10, idle); n != 0 {
		t.Fatalf("at desired: want 0, got %d", n)
	}
}

func TestBudgetDayStart(t *testing.T) {
	s := pool(t, example+"  budgetTimeZone: Asia/Seoul\n")
	got := s.BudgetDayStart(time.Date(2026, 3, 2, 16, 0, 0, 0, time.UTC)) // 01:00 on the 3rd in Seoul
	if want := time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("got %s, want %s", got, want)
	}
}
