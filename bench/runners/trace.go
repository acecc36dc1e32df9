package main

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/pave-platform/pave/internal/runners"
)

// Trace generates two weeks of job arrivals in zone, from Monday 00:00:
// pushes arrive as a Poisson process whose rate follows the working day
// (morning and afternoon peaks, a lunch dip, quiet evenings, nearly empty
// nights and weekends), each push queues 1–6 jobs at once (a workflow's
// matrix), job durations are log-normal (median 4 min, σ 1.1: a heavy
// tail, capped at 2 h), and the second Thursday has a release-day burst
// (three times the push rate from 14:00 to 16:00). Same seed, same trace.
func Trace(seed uint64, start time.Time, days int) []runners.Job {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var jobs []runners.Job
	for m := 0; m < days*24*60; m++ {
		t := start.Add(time.Duration(m) * time.Minute)
		rate := pushesPerMinute(t)
		if t.Weekday() == time.Thursday && m/(24*60) >= 7 && t.Hour() >= 14 && t.Hour() < 16 {
			rate *= 3
		}
		for range poisson(rng, rate) {
			at := t.Add(time.Duration(rng.Float64() * float64(time.Minute)))
			k := 1
			for k < 6 && rng.Float64() < 0.45 {
				k++
			}
			for range k {
				d := time.Duration(math.Exp(math.Log(240)+1.1*rng.NormFloat64()) * float64(time.Second))
				jobs = append(jobs, runners.Job{Queued: at, Duration: min(max(d, 20*time.Second), 2*time.Hour)})
			}
		}
	}
	sortJobs(jobs)
	return jobs
}

// pushesPerMinute is the working day's shape.
func pushesPerMinute(t time.Time) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		return 0.03
	}
	switch {
	case h < 7:
		return 0.02
	case h < 9: // ramp up
		return 0.02 + (h-7)/2*2.2
	case h < 12:
		return 2.2
	case h < 13: // lunch
		return 0.8
	case h < 18:
		return 2.6
	case h < 21: // ramp down
		return 2.6 - (h-18)/3*2.4
	default:
		return 0.1
	}
}

func poisson(rng *rand.Rand, mean float64) int {
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}
