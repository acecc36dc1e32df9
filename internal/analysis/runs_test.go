package analysis

import (
	"runtime"
	"sync"
)

// eachRun calls run(i) for i in [0, n) on GOMAXPROCS goroutines and
// returns the outcomes in order. The Monte-Carlo runs are independent and
// each seeds its own generator, so the outcomes (and every figure the
// tests log) are the same as in a loop, only sooner.
func eachRun[T any](n int, run func(i int) T) []T {
	out := make([]T, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(n, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = run(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}
