package gateway

import (
	"context"
	"encoding/json"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/testsvc"
)

// fakeClock is the write spacing's clock in these tests: its time moves
// only when a test or a Sleep moves it, so spacing is checked by what was
// written, never by how long it took. After fires at once (moving the
// time on) unless the clock is held; then it fires on release.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	held    bool
	waiting []chan time.Time
	slept   int
}

func newFakeClock(t *testing.T) *fakeClock {
	c := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	t.Cleanup(func() { c.release(0) }) // no writer is left waiting
	return c
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slept++
	ch := make(chan time.Time)
	if !c.held {
		c.now = c.now.Add(d)
		close(ch)
		return ch
	}
	c.waiting = append(c.waiting, ch)
	return ch
}

// advance moves the time on by d.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// hold makes After wait until release.
func (c *fakeClock) hold() {
	c.mu.Lock()
	c.held = true
	c.mu.Unlock()
}

// release moves the time on by d and fires every After.
func (c *fakeClock) release(d time.Duration) {
	c.mu.Lock()
	c.held = false
	c.now = c.now.Add(d)
	for _, ch := range c.waiting {
		close(ch)
	}
	c.waiting = nil
	c.mu.Unlock()
}

func (c *fakeClock) sleeps() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slept
}

func (c *fakeClock) sleeping() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiting)
}

// burst holds clk, reports n updates of job, all within the interval
// (the clock does not move), waits until the flush clock waits out the
// interval, and returns the newest snapshot. The test releases clk.
func burst(t *testing.T, e *env, clk *fakeClock, job string, n int) progress.Snapshot {
	t.Helper()
	// Snapshot times are kept to the millisecond, and an update whose
	// updated_at equals its started_at is the start (a state change,
	// written at once). A burst in the start's millisecond would be
	// that, not spaced: let the real clock leave it first.
	started, err := e.svc.Get(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	for started.StartedAt != nil && !progress.At(time.Now()).After(started.StartedAt.Time) {
		time.Sleep(100 * time.Microsecond)
	}
	clk.hold()
	var last progress.Snapshot
	for k := 1; k <= n; k++ {
		last = e.report(t, job, 0.5+float64(k)/float64(2*(n+1)), "")
	}
	testsvc.Eventually(t, 15*time.Second, "the flush clock to wait out the interval", func() bool { return clk.sleeping() == 1 })
	return last
}

// TestMinWriteIntervalSpacesWebSocketWrites: with MinWriteInterval, a
// burst of updates right after a write reaches the client as one update,
// the newest, once the interval is over; an update to a connection that
// has been quiet for longer goes out without waiting, and so does a state
// change (the terminal snapshot) right after a write.
func TestMinWriteIntervalSpacesWebSocketWrites(t *testing.T) {
	t.Parallel()
	const interval = time.Second
	clk := newFakeClock(t)
	e := setup(t, func(c *Config) { c.MinWriteInterval, c.clock = interval, clk })

	// A quiet connection: the update is not held back.
	quiet := e.createJob(t, "alice", "p")
	c := e.dialAs(t, "alice")
	c.subscribe("job:" + quiet.JobID)
	if f := c.next(); f.Job.Seq != quiet.Seq { // the current snapshot
		t.Fatalf("first update seq %d, want %d", f.Job.Seq, quiet.Seq)
	}
	clk.advance(interval) // the connection has been quiet for the interval
	before := clk.sleeps()
	want := e.report(t, quiet.JobID, 0.5, "")
	if f := c.next(); f.Job.Seq != want.Seq {
		t.Fatalf("got seq %d, want %d", f.Job.Seq, want.Seq)
	}
	if clk.sleeps() != before {
		t.Errorf("an update to a connection quiet for the interval waited before it was written")
	}

	// A burst right after that write: held until the interval is over,
	// then the newest snapshot alone.
	newest := burst(t, e, clk, quiet.JobID, 20)
	clk.release(interval)
	if f := c.next(); f.Job.Seq != newest.Seq {
		t.Fatalf("after the interval: seq %d, want the newest, %d, alone", f.Job.Seq, newest.Seq)
	}
	if value(e.gw.m.coalesced) < 19 {
		t.Errorf("coalesced = %v, want the burst's older updates (19)", value(e.gw.m.coalesced))
	}

	// The terminal snapshot right after that write, the clock held: it
	// goes out at once.
	clk.hold()
	done := e.report(t, quiet.JobID, 0, progress.Succeeded)
	if f := c.next(); f.Job.Seq != done.Seq || f.Job.State != progress.Succeeded {
		t.Fatalf("terminal: seq %d %s, want %d succeeded", f.Job.Seq, f.Job.State, done.Seq)
	}
	clk.release(0)
}

// TestMinWriteIntervalSpacesSSEWrites is the SSE twin: after the burst,
// the stream's next event is the newest snapshot; the terminal one right
// after it is not held back.
func TestMinWriteIntervalSpacesSSEWrites(t *testing.T) {
	t.Parallel()
	clk := newFakeClock(t)
	e := setup(t, func(c *Config) { c.MinWriteInterval, c.clock = time.Second, clk })
	job := e.createJob(t, "alice", "p")
	s := e.stream(t, "/api/v1/jobs/"+job.JobID+"/events?token="+url.QueryEscape(e.token(t, "alice", false, time.Hour)), nil)
	s.update() // the current snapshot, written at once
	started := e.report(t, job.JobID, 0.5, "")
	if snap := sseSnapshot(t, s.update()); snap.Seq != started.Seq {
		t.Fatalf("the start: seq %d, want %d at once", snap.Seq, started.Seq)
	}
	newest := burst(t, e, clk, job.JobID, 20)
	clk.release(time.Second)
	if snap := sseSnapshot(t, s.update()); snap.Seq != newest.Seq {
		t.Fatalf("after the interval: seq %d, want the newest, %d, alone", snap.Seq, newest.Seq)
	}
	clk.hold()
	done := e.report(t, job.JobID, 0, progress.Succeeded)
	if snap := sseSnapshot(t, s.update()); snap.State != progress.Succeeded || snap.Seq != done.Seq {
		t.Fatalf("terminal: %s seq %d, want succeeded at %d at once", snap.State, snap.Seq, done.Seq)
	}
	clk.release(0)
}

func sseSnapshot(t *testing.T, ev sseEvent) progress.Snapshot {
	t.Helper()
	var snap progress.Snapshot
	if err := json.Unmarshal([]byte(ev.data), &snap); err != nil {
		t.Fatalf("event data %q: %v", ev.data, err)
	}
	return snap
}

func TestMinWriteIntervalIsBounded(t *testing.T) {
	t.Parallel()
	for _, iv := range []time.Duration{-time.Millisecond, MaxWriteInterval + time.Millisecond} {
		cfg := Config{MinWriteInterval: iv}
		if err := cfg.Validate(); err == nil {
			t.Errorf("MinWriteInterval %v accepted", iv)
		}
	}
}

// TestFlushClockOneWakePerSlot: connections parked with due times within
// one slot are flushed by one wait of the clock, none before its due
// time; a stopped clock runs nothing more.
func TestFlushClockOneWakePerSlot(t *testing.T) {
	t.Parallel()
	clk := newFakeClock(t)
	const interval = 80 * time.Millisecond // a slot of 10 ms
	f := newFlushClock(clk, interval)
	defer f.stop()
	start := clk.Now()
	clk.hold()
	var mu sync.Mutex
	var ran []time.Time
	for i := range 100 {
		f.park(start.Add(interval+time.Duration(i)*50*time.Microsecond), func() {
			mu.Lock()
			ran = append(ran, clk.Now())
			mu.Unlock()
		})
	}
	testsvc.Eventually(t, 15*time.Second, "the flush clock to wait", func() bool { return clk.sleeping() == 1 })
	clk.release(interval + 10*time.Millisecond)
	testsvc.Eventually(t, 15*time.Second, "every parked flush to run", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ran) == 100
	})
	if n := clk.sleeps(); n != 1 {
		t.Errorf("the clock waited %d times for 100 connections due in one slot, want 1", n)
	}
	for _, at := range ran {
		if at.Before(start.Add(interval + 5*time.Millisecond)) {
			t.Fatalf("a flush ran at %v, before its due time", at.Sub(start))
		}
	}
	f.stop()
	f.park(clk.Now(), func() { t.Error("a flush ran after stop") })
}
