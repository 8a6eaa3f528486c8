package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// gcHeadroom is the least room the garbage collector leaves the heap to
// grow into before its next cycle: GOGC's percentage of the live heap,
// but never less than this.
//
// A server's live heap is small (a few MiB for thousands of jobs), so
// with GOGC=100 it collected several times a second under load, and each
// cycle scans the stack of every connection's goroutine whatever the
// heap: with 3,000 viewers and 4,000 reports a second (progressd bench
// --scenario perjob) the collector was ~9% of the server's CPU, most of
// it the fixed cost of a cycle; with this floor the mark work halved
// (0.65 → 0.30 s of the run). A heap that holds ≥ 32 MiB live already
// grows by more than this between cycles, so a large server collects as
// GOGC=100 says (19,000 idle connections: 243–244 MiB RSS with the
// floor or without), and a small one keeps more garbage: a server
// holding 19,000 jobs and no connection, 123 MiB RSS instead of 62.
const gcHeadroom = 32 << 20

// maxGCPercent bounds the percentage startGCFloor sets, for a heap of almost
// nothing live.
const maxGCPercent = 5000

// startGCFloor keeps the collector's headroom at least gcHeadroom: after
// every cycle it sets GOGC's percentage to what leaves that much room
// over the live heap, or back to the default 100 when that leaves more.
// With GOGC set in the environment it does nothing (the operator chose);
// GOMEMLIMIT still bounds the heap as always. It returns stop, which
// puts GOGC back to 100.
func startGCFloor() (stop func()) {
	if os.Getenv("GOGC") != "" {
		return func() {} // the operator chose: leave it as set
	}
	const base = 100
	var mu sync.Mutex // orders the last adjustment before stop's reset
	stopped := false
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var arm func()
	arm = func() {
		// A cleanup of an object unreachable at once runs after the
		// next cycle: one call per cycle, on the cleanup goroutine.
		runtime.AddCleanup(new([4]int64), func(struct{}) {
			mu.Lock()
			defer mu.Unlock()
			if stopped {
				return
			}
			metrics.Read(sample)
			debug.SetGCPercent(gcPercentFor(base, sample[0].Value.Uint64()))
			arm()
		}, struct{}{})
	}
	arm()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		debug.SetGCPercent(base)
	}
}

// gcPercentFor is the GOGC percentage that leaves the heap max(base% of
// live, gcHeadroom) to grow by.
func gcPercentFor(base int, live uint64) int {
	if live == 0 {
		return maxGCPercent
	}
	p := int(min(uint64(gcHeadroom)*100/live, maxGCPercent))
	return max(base, p)
}
