// Command runners is the runner-scaling benchmark: a deterministic
// simulation that replays a generated two-week job trace against
// queue-only scaling (ARC runner scale sets), a cron warm pool
// (schedule-only, philips-labs style), KEDA's cron + queue scalers, Pave
// (schedule + queue + budget) and Pave's learned schedule (`suggest`,
// trained on the first week only), all through internal/runners' one
// Desire policy and one simulator, and prints queue waits, runner-hours
// and whether the goals are met.
//
//	go run ./bench/runners            # a few seconds
//	go run ./bench/runners -seed 7    # another trace
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/pave-platform/pave/internal/runners"
)

const zone = "Asia/Seoul"

func main() {
	seed := flag.Uint64("seed", 1, "trace seed")
	flag.Parse()
	if err := run(os.Stdout, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "bench/runners:", err)
		os.Exit(1)
	}
}

// Strategy is one scaler, written as a RunnerPool spec.
type Strategy struct {
	Name string
	Pool runners.RunnerPool
	// HandWritten schedules compete for "best hand-written".
	HandWritten bool
}

func pool(mut func(*runners.Spec)) runners.RunnerPool {
	p := runners.RunnerPool{APIVersion: runners.APIVersion, Kind: runners.Kind, Metadata: runners.Metadata{Name: "linux"},
		Spec: runners.Spec{Min: 0, Max: 400, Target: runners.TargetSpec{Local: &runners.LocalTarget{}}}}
	mut(&p.Spec)
	p.Default()
	return p
}

func window(cron string, d time.Duration, floor, spare int) runners.Schedule {
	return runners.Schedule{Cron: cron, TimeZone: zone, Duration: runners.Duration{Duration: d}, Min: floor, Spare: spare}
}

func strategies() []Strategy {
	off := false
	return []Strategy{
		{Name: "queue-only (ARC)", Pool: pool(func(s *runners.Spec) {})},
		{Name: "schedule-only (cron warm pool)", HandWritten: true, Pool: pool(func(s *runners.Spec) {
			s.QueueScaleUp = &off
			s.Min = 2
			s.Schedules = []runners.Schedule{window("0 8 * * 1-5", 13*time.Hour, 95, 0)}
		})},
		{Name: "KEDA cron + queue", HandWritten: true, Pool: pool(func(s *runners.Spec) {
			s.Schedules = []runners.Schedule{window("0 9 * * 1-5", 9*time.Hour, 60, 0)}
		})},
		{Name: "Pave (schedule + queue + budget)", HandWritten: true, Pool: pool(func(s *runners.Spec) {
			s.RunnerHoursPerDay = 900
			s.BudgetTimeZone = zone
			s.Schedules = []runners.Schedule{
				window("0 8 * * 1-5", 4*time.Hour, 0, 6),
				window("0 13 * * 1-5", 6*time.Hour, 0, 6),
			}
		})},
	}
}

type row struct {
	name              string
	p50, p95, maxWait time.Duration
	hours             float64
	peak              int
	handWritten       bool
}

func run(w *os.File, seed uint64) error {
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return err
	}
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, loc) // a Monday
	jobs := Trace(seed, start, 14)
	opt := runners.SimOptions{StartUp: 60 * time.Second, Tick: 5 * time.Second}
	var jobHours float64
	for _, j := range jobs {
		jobHours += j.Duration.Hours()
	}
	fmt.Fprintf(w, "trace: %d jobs over 14 days (seed %d), %.0f job-hours; runner start-up %s, decisions every %s, idle scale-down 10m\n\n",
		len(jobs), seed, jobHours, opt.StartUp, opt.Tick)

	began := time.Now()
	var rows []row
	for _, st := range strategies() {
		if err := st.Pool.Validate(); err != nil {
			return fmt.Errorf("%s: %w", st.Name, err)
		}
		r := runners.Simulate(&st.Pool.Spec, jobs, opt)
		rows = append(rows, row{st.Name, r.Percentile(0.5), r.Percentile(0.95), r.Percentile(1), r.RunnerHours, r.PeakRunners, st.HandWritten})
	}

	// The learned schedule: trained on week one only, replayed on both.
	weekOne := jobs[:slices.IndexFunc(jobs, func(j runners.Job) bool { return !j.Queued.Before(start.AddDate(0, 0, 7)) })]
	base := pool(func(s *runners.Spec) {})
	learned, err := runners.Suggest(base, zone, weekOne, opt)
	if err != nil {
		return err
	}
	lp := base
	lp.Spec.Schedules = learned.Schedules
	if err := lp.Validate(); err != nil {
		return err
	}
	r := runners.Simulate(&lp.Spec, jobs, opt)
	rows = append(rows, row{"Pave learned (suggest, week 1)", r.Percentile(0.5), r.Percentile(0.95), r.Percentile(1), r.RunnerHours, r.PeakRunners, false})

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "strategy\tp50 wait\tp95 wait\tmax wait\trunner-hours\tvs queue-only\tpeak runners\t")
	for _, x := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.0f\t%.2fx\t%d\t\n", x.name, x.p50.Round(time.Second), x.p95.Round(time.Second), x.maxWait.Round(time.Second), x.hours, x.hours/rows[0].hours, x.peak)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nlearned schedule (%d replays of week 1; p95 there %s, %.0f runner-hours):\n", learned.Replays, learned.P95.Round(time.Second), learned.RunnerHours)
	for _, s := range learned.Schedules {
		fmt.Fprintf(w, "  - {cron: %q, timeZone: %s, duration: %s, spare: %d}\n", s.Cron, s.TimeZone, s.Duration, s.Spare)
	}
	fmt.Fprintf(w, "simulated %d strategies + the search in %s\n\n", len(rows), time.Since(began).Round(time.Millisecond))

	target := 30 * time.Second
	queueOnly, pave, learnedRow := rows[0], rows[3], rows[len(rows)-1]
	best := row{hours: -1}
	for _, x := range rows {
		if x.handWritten && x.p95 <= target && (best.hours < 0 || x.hours < best.hours) {
			best = x
		}
	}
	goal := func(ok bool, format string, args ...any) {
		mark := "MET   "
		if !ok {
			mark = "MISSED"
		}
		fmt.Fprintf(w, "goal %s "+format+"\n", append([]any{mark}, args...)...)
	}
	goal(pave.p95 <= target, "Pave p95 wait %s <= %s", pave.p95.Round(time.Second), target)
	goal(pave.hours <= 1.1*queueOnly.hours, "Pave runner-hours %.0f <= 1.1x queue-only's %.0f (%.2fx)", pave.hours, queueOnly.hours, pave.hours/queueOnly.hours)
	if best.hours < 0 {
		goal(false, "no hand-written schedule met p95 <= %s, nothing to compare the learned one with", target)
	} else {
		goal(learnedRow.hours <= 1.05*best.hours && learnedRow.p95 <= target, "learned schedule %.0f runner-hours (p95 %s) within 5%% of the best hand-written one meeting p95, %s: %.0f (%.3fx)",
			learnedRow.hours, learnedRow.p95.Round(time.Second), best.name, best.hours, learnedRow.hours/best.hours)
	}
	return nil
}
