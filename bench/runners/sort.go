package main

import (
	"slices"

	"github.com/pave-platform/pave/internal/runners"
)

func sortJobs(jobs []runners.Job) {
	slices.SortStableFunc(jobs, func(a, b runners.Job) int { return a.Queued.Compare(b.Queued) })
}
