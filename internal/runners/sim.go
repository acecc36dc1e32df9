package runners

import (
	"container/heap"
	"slices"
	"time"
)

// Job is one job of a queue history: when it was queued and how long it
// ran once it had a runner.
type Job struct {
	Queued   time.Time     `json:"queued"`
	Duration time.Duration `json:"duration"`
}

// SimOptions are the simulated machine's constants.
type SimOptions struct {
	// StartUp is how long a new runner takes to accept jobs (60 s).
	StartUp time.Duration
	// Tick is how often the pool decides (the controller's interval).
	Tick time.Duration
}

// SimResult is what a replay measured.
type SimResult struct {
	Waits       []time.Duration // per job, in queue order
	RunnerHours float64
	PeakRunners int
}

// Percentile is the q-quantile (0..1) of the waits, nearest rank.
func (r SimResult) Percentile(q float64) time.Duration {
	if len(r.Waits) == 0 {
		return 0
	}
	w := slices.Clone(r.Waits)
	slices.Sort(w)
	i := int(q*float64(len(w))+0.5) - 1
	return w[min(max(i, 0), len(w)-1)]
}

// Simulate replays jobs (sorted by Queued) against the pool's policy: every
// Tick the pool calls Desire and starts runners (ready StartUp later) or
// stops idle ones past the idle timeout; a queued job takes the most
// recently idle runner, so the long-idle ones are those that go. Runner
// time counts from start to stop, start-up included. It is deterministic.
func Simulate(s *Spec, jobs []Job, opt SimOptions) SimResult {
	res := SimResult{Waits: make([]time.Duration, len(jobs))}
	if len(jobs) == 0 {
		return res
	}
	var (
		now      = jobs[0].Queued.Truncate(24 * time.Hour) // a warm-up: windows open before the first job
		end      time.Time
		starting timeHeap // ready times
		busy     timeHeap // finish times
		idle     []time.Time
		queue    []int // job indices waiting
		next     int   // next job to arrive
		runnerS  float64
		dayS     float64
		dayEnd   time.Time
		minute   time.Time
		windows  Decision
		tick     = now
	)
	for _, j := range jobs {
		end = maxTime(end, j.Queued.Add(j.Duration))
	}
	end = end.Add(time.Hour)
	total := func() int { return len(starting) + len(busy) + len(idle) }
	dispatch := func() {
		for len(queue) > 0 && len(idle) > 0 {
			j := queue[0]
			queue = queue[1:]
			idle = idle[:len(idle)-1]
			res.Waits[j] = now.Sub(jobs[j].Queued)
			heap.Push(&busy, now.Add(jobs[j].Duration))
		}
	}
	for now.Before(end) {
		// The next event: an arrival, a runner ready, a job done, a tick.
		t := tick
		if next < len(jobs) && jobs[next].Queued.Before(t) {
			t = jobs[next].Queued
		}
		if len(starting) > 0 && starting[0].Before(t) {
			t = starting[0]
		}
		if len(busy) > 0 && busy[0].Before(t) {
			t = busy[0]
		}
		dt := t.Sub(now).Seconds() * float64(total())
		runnerS += dt
		dayS += dt
		now = t
		for next < len(jobs) && !jobs[next].Queued.After(now) {
			queue = append(queue, next)
			next++
		}
		for len(starting) > 0 && !starting[0].After(now) {
			heap.Pop(&starting)
			idle = append(idle, now)
		}
		for len(busy) > 0 && !busy[0].After(now) {
			heap.Pop(&busy)
			idle = append(idle, now)
		}
		dispatch()
		if !now.Before(tick) {
			tick = tick.Add(opt.Tick)
			if !now.Before(dayEnd) {
				dayEnd = s.BudgetDayStart(now).AddDate(0, 0, 1)
				dayS = 0
			}
			if m := now.Truncate(time.Minute); !m.Equal(minute) {
				minute, windows = m, s.Windows(m)
			}
			d := s.decide(Observation{Now: now, Queued: len(queue), Busy: len(busy), RunnerHoursToday: dayS / 3600}, windows)
			if n := total(); n < d.Desired {
				for range d.Desired - n {
					heap.Push(&starting, now.Add(opt.StartUp))
				}
			} else if r := s.Retirable(now, n, d.Desired, idle); r > 0 {
				idle = idle[r:]
			}
			res.PeakRunners = max(res.PeakRunners, total())
		}
	}
	for _, j := range queue { // never served: count the wait to the end
		res.Waits[j] = now.Sub(jobs[j].Queued)
	}
	res.RunnerHours = runnerS / 3600
	return res
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

type timeHeap []time.Time

func (h timeHeap) Len() int           { return len(h) }
func (h timeHeap) Less(i, j int) bool { return h[i].Before(h[j]) }
func (h timeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timeHeap) Push(x any)        { *h = append(*h, x.(time.Time)) }
func (h *timeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
