package gateway

import (
	"slices"
	"sync"
	"time"
)

// clock is what the write spacing (Config.MinWriteInterval) reads time
// from and waits on: the real clock, or a test's.
type clock interface {
	Now() time.Time
	// After returns a channel that is closed or sent on once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// tooSoon reports whether a write now would come less than
// MinWriteInterval after last, the previous write.
func (g *Gateway) tooSoon(last time.Time) bool {
	iv := g.cfg.MinWriteInterval
	return iv > 0 && g.cfg.clock.Now().Sub(last) < iv
}

// flushClock is the one clock that ends the write spacing of every
// connection and stream of a gateway (issue 17). A connection written to
// less than MinWriteInterval ago that has more to send parks here with
// the time its next write is due, instead of arming a timer of its own:
// at 1,000 viewers × 10 writes a second, per-connection timers were
// 10,000 runtime timers a second and showed in the profile. Due times are
// rounded up to a slot of MinWriteInterval/8 (at least a millisecond), so
// the clock's one goroutine wakes at most once per slot, and every
// connection due in it is flushed in that one wake-up; spacing is never
// shortened by the rounding, and lengthened by at most a slot.
//
// The goroutine runs only while something is parked. park and stop are
// safe from any goroutine; a parked function runs on the clock's
// goroutine and must not block.
type flushClock struct {
	clk  clock
	slot time.Duration

	mu      sync.Mutex
	parked  []parkedFlush
	running bool      // the goroutine runs
	next    time.Time // what it waits for; a park due earlier kicks it
	stopped bool
	kick    chan struct{}
	wg      sync.WaitGroup
}

type parkedFlush struct {
	due time.Time
	fn  func()
}

func newFlushClock(clk clock, interval time.Duration) *flushClock {
	return &flushClock{clk: clk, slot: max(interval/8, time.Millisecond), kick: make(chan struct{}, 1)}
}

// park runs fn on the clock's goroutine at the first slot at or after
// due. After stop it does nothing.
func (f *flushClock) park(due time.Time, fn func()) {
	// Rounded up to the end of its slot: never earlier than due.
	due = due.Truncate(f.slot).Add(f.slot)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return
	}
	f.parked = append(f.parked, parkedFlush{due: due, fn: fn})
	if !f.running {
		f.running = true
		f.wg.Add(1)
		go f.run()
		return
	}
	if due.Before(f.next) {
		f.next = due
		select {
		case f.kick <- struct{}{}:
		default:
		}
	}
}

// run waits for the earliest due time, runs every function due by then,
// and returns once nothing is parked.
func (f *flushClock) run() {
	defer f.wg.Done()
	var due []func()
	for {
		f.mu.Lock()
		if f.stopped || len(f.parked) == 0 {
			f.running = false
			f.mu.Unlock()
			return
		}
		next := slices.MinFunc(f.parked, func(a, b parkedFlush) int { return a.due.Compare(b.due) }).due
		f.next = next
		f.mu.Unlock()
		if d := next.Sub(f.clk.Now()); d > 0 {
			select {
			case <-f.clk.After(d):
			case <-f.kick: // an earlier due time may have come in
				continue
			}
		}
		now := f.clk.Now()
		f.mu.Lock()
		due = due[:0]
		f.parked = slices.DeleteFunc(f.parked, func(p parkedFlush) bool {
			if p.due.After(now) {
				return false
			}
			due = append(due, p.fn)
			return true
		})
		f.mu.Unlock()
		for _, fn := range due {
			fn()
		}
		clear(due)
	}
}

// stop drops everything parked and waits for the goroutine to return.
func (f *flushClock) stop() {
	f.mu.Lock()
	f.stopped = true
	f.parked = nil
	f.mu.Unlock()
	select {
	case f.kick <- struct{}{}:
	default:
	}
	f.wg.Wait()
}
