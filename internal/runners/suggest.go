package runners

import (
	"fmt"
	"slices"
	"time"
)

// Suggestion is a learned schedule and what it did on the history.
type Suggestion struct {
	Schedules   []Schedule    `json:"schedules"`
	P95         time.Duration `json:"p95"`
	RunnerHours float64       `json:"runnerHours"`
	// Met is false when even the largest spare the search tried could
	// not bring p95 under the target (Max too low for the history).
	Met bool `json:"met"`
	// Replays is how many simulations the search ran.
	Replays int `json:"replays"`
}

// slot is an hour of a weekday (Mon–Fri) or of a weekend day.
type slot struct {
	weekend bool
	hour    int
}

func slotOf(t time.Time) int {
	i := t.Hour()
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		i += 24
	}
	return i
}

// Suggest learns, from a queue history, the schedule that keeps the p95
// queue wait under the pool's QueueWaitTarget (aiming 10% under it) for
// the fewest runner-hours:
// warm spare per hour of a weekday and of a weekend day, in zone. It
// replays the history through the same Desire policy the pool runs:
// starting with no spare, it raises the spare of the hour whose jobs
// wait longest past the target (per spare runner already given) until p95 is met, then lowers each hour
// again where p95 stays met. The pool's other fields are kept; its
// schedules are replaced.
func Suggest(pool RunnerPool, zone string, history []Job, opt SimOptions) (Suggestion, error) {
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return Suggestion{}, fmt.Errorf("time zone %q: %w", zone, err)
	}
	// Aim 10% under the target: a schedule fitted exactly to past weeks
	// lands just over it on the next week's noise.
	target := pool.Spec.QueueWaitTarget.Duration * 9 / 10
	spare := make([]int, 48)
	var out Suggestion
	try := func() (SimResult, RunnerPool, error) {
		p := pool
		p.Spec.Schedules = schedulesFrom(spare, zone)
		if err := p.Validate(); err != nil {
			return SimResult{}, p, err
		}
		out.Replays++
		return Simulate(&p.Spec, history, opt), p, nil
	}
	res, p, err := try()
	if err != nil {
		return out, err
	}
	for res.Percentile(0.95) > target {
		// The hour whose jobs wait longest past the target, in total. A
		// warm runner must be there when the job is queued and must have
		// started a start-up earlier: a job counts for both hours.
		late := make([]time.Duration, 48)
		for i, w := range res.Waits {
			if w > target {
				at, started := slotOf(history[i].Queued.In(loc)), slotOf(history[i].Queued.Add(-opt.StartUp).In(loc))
				late[at] += w - target
				if started != at {
					late[started] += w - target
				}
			}
		}
		// Weighed by the spare already given, so an hour raised without
		// effect yields to the next one.
		worst, score := 0, 0.0
		for i := range late {
			if s := float64(late[i]) / float64(spare[i]+1); s > score {
				worst, score = i, s
			}
		}
		if late[worst] == 0 || spare[worst] >= pool.Spec.Max {
			break
		}
		spare[worst] = min(spare[worst]+max(1, spare[worst]/4), pool.Spec.Max)
		if res, p, err = try(); err != nil {
			return out, err
		}
	}
	out.Met = res.Percentile(0.95) <= target
	best := res
	if out.Met {
		// Prune: hours in order of spare, lowering while p95 holds.
		for i := range spare {
			for spare[i] > 0 {
				spare[i]--
				r, _, err := try()
				if err != nil {
					return out, err
				}
				if r.Percentile(0.95) > target || r.RunnerHours >= best.RunnerHours {
					spare[i]++
					break
				}
				best = r
			}
		}
		_, p, _ = try()
	}
	out.Schedules, out.P95, out.RunnerHours = p.Spec.Schedules, best.Percentile(0.95), best.RunnerHours
	return out, nil
}

// schedulesFrom writes per-hour spare as cron windows: runs of equal
// spare within weekdays ("1-5") and within weekends ("0,6") become one
// schedule each.
func schedulesFrom(spare []int, zone string) []Schedule {
	var out []Schedule
	for _, days := range []struct {
		off int
		dow string
	}{{0, "1-5"}, {24, "0,6"}} {
		for h := 0; h < 24; {
			s := spare[days.off+h]
			n := 1
			for h+n < 24 && spare[days.off+h+n] == s {
				n++
			}
			if s > 0 {
				out = append(out, Schedule{
					Cron:     fmt.Sprintf("0 %d * * %s", h, days.dow),
					TimeZone: zone,
					Duration: Duration{time.Duration(n) * time.Hour},
					Spare:    s,
				})
			}
			h += n
		}
	}
	return slices.Clip(out)
}
