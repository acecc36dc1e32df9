package runners

import "time"

// Observation is what a pool sees when it decides.
type Observation struct {
	Now time.Time
	// Queued jobs wait for a runner; Busy runners run a job.
	Queued, Busy int
	// RunnerHoursToday is the runner-hours spent since the budget day
	// began (BudgetTimeZone's midnight), starting runners included.
	RunnerHoursToday float64
}

// Decision is how many runners the pool wants, and why.
type Decision struct {
	Desired int `json:"desired"`
	// Floor and Spare are what the active schedules ask for (0 outside
	// every window, and when the budget is spent).
	Floor int `json:"floor"`
	Spare int `json:"spare"`
	// Windows are the cron expressions of the active schedules.
	Windows         []string `json:"windows,omitempty"`
	BudgetExhausted bool     `json:"budgetExhausted,omitempty"`
}

// Desire is the pool's policy: a pure, deterministic function of the
// observation and the (validated) spec. The pool wants
//
//	max(min, floor, busy + queued + spare), at most max
//
// where floor and spare come from the schedule windows active now (the
// largest of each), queued counts only with queue scale-up on, and a
// spent daily budget drops floor and spare: warm capacity is what the
// budget caps, never a queued job's runner.
func (s *Spec) Desire(o Observation) Decision {
	return s.decide(o, s.Windows(o.Now))
}

// Windows is what the schedules active at now ask for (Desired unset).
// Cron windows open and close on whole minutes, so a caller deciding
// often (the simulation) may keep it for the rest of the minute.
func (s *Spec) Windows(now time.Time) Decision {
	var d Decision
	for i := range s.Schedules {
		sc := &s.Schedules[i]
		if !sc.Active(now) {
			continue
		}
		d.Windows = append(d.Windows, sc.Cron)
		d.Floor = max(d.Floor, sc.Min)
		d.Spare = max(d.Spare, sc.Spare)
	}
	return d
}

// decide completes the windows' decision w for the observation.
func (s *Spec) decide(o Observation, w Decision) Decision {
	d := w
	if s.RunnerHoursPerDay > 0 && o.RunnerHoursToday >= s.RunnerHoursPerDay {
		d.BudgetExhausted = true
		d.Floor, d.Spare = 0, 0
	}
	demand := o.Busy + d.Spare
	if s.QueueScaleUp == nil || *s.QueueScaleUp {
		demand += o.Queued
	}
	d.Desired = min(max(s.Min, d.Floor, demand), s.Max)
	return d
}

// Active reports whether now falls in one of the schedule's windows: the
// cron fired at some f with f <= now < f + duration.
func (sc *Schedule) Active(now time.Time) bool {
	if sc.sched == nil {
		return false
	}
	t := now.In(sc.loc)
	return !sc.sched.Next(t.Add(-sc.Duration.Duration)).After(t)
}

// BudgetDayStart is the start of the budget day holding now.
func (s *Spec) BudgetDayStart(now time.Time) time.Time {
	loc := s.budgetLoc
	if loc == nil {
		loc = time.UTC
	}
	t := now.In(loc)
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
}

// Retirable is how many idle runners to stop: those idle for at least
// the idle timeout, oldest first, while the pool has more than it wants.
// idleSince holds the idle runners' idle-since times, oldest first.
func (s *Spec) Retirable(now time.Time, total, desired int, idleSince []time.Time) int {
	n := 0
	for _, since := range idleSince {
		if total-n <= desired || now.Sub(since) < s.IdleTimeout.Duration {
			break
		}
		n++
	}
	return n
}
