package gateway

import (
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
// written, never by how long it took. Sleep returns at once (moving the
// time on) unless the clock is held; then it waits for release.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	held    bool
	waiting []chan struct{}
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

func (c *fakeClock) Sleep(d time.Duration) {
	c.mu.Lock()
	c.slept++
	if !c.held {
		c.now = c.now.Add(d)
		c.mu.Unlock()
		return
	}
	ch := make(chan struct{})
	c.waiting = append(c.waiting, ch)
	c.mu.Unlock()
	<-ch
}

// advance moves the time on by d.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// hold makes Sleep wait until release.
func (c *fakeClock) hold() {
	c.mu.Lock()
	c.held = true
	c.mu.Unlock()
}

// release moves the time on by d and wakes every Sleep.
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

// burst holds clk, reports n updates of job then succeeded, all within
// the interval (the clock does not move), waits until the writer waits out
// the interval, and returns the terminal snapshot. The test releases clk.
func burst(t *testing.T, e *env, clk *fakeClock, job string, n int) progress.Snapshot {
	t.Helper()
	clk.hold()
	for k := 1; k <= n; k++ {
		e.report(t, job, float64(k)/float64(n+1), "")
	}
	done := e.report(t, job, 0, progress.Succeeded)
	testsvc.Eventually(t, 15*time.Second, "the writer to wait out the interval", func() bool { return clk.sleeping() == 1 })
	return done
}

// TestMinWriteIntervalSpacesWebSocketWrites: with MinWriteInterval, a
// burst of updates right after a write reaches the client as one update,
// the newest — the terminal one; an update to a connection that has been
// quiet for longer goes out without waiting.
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
	done := burst(t, e, clk, quiet.JobID, 20)
	clk.release(interval)
	if f := c.next(); f.Job.Seq != done.Seq || f.Job.State != progress.Succeeded {
		t.Fatalf("after the interval: seq %d %s, want the terminal seq %d alone", f.Job.Seq, f.Job.State, done.Seq)
	}
	if value(e.gw.m.coalesced) < 20 {
		t.Errorf("coalesced = %v, want the burst's older updates (20)", value(e.gw.m.coalesced))
	}
}

// TestMinWriteIntervalSpacesSSEWrites is the SSE twin: after the burst,
// the stream's next event is the terminal snapshot.
func TestMinWriteIntervalSpacesSSEWrites(t *testing.T) {
	t.Parallel()
	clk := newFakeClock(t)
	e := setup(t, func(c *Config) { c.MinWriteInterval, c.clock = time.Second, clk })
	job := e.createJob(t, "alice", "p")
	s := e.stream(t, "/api/v1/jobs/"+job.JobID+"/events?token="+url.QueryEscape(e.token(t, "alice", false, time.Hour)), nil)
	s.update() // the current snapshot, written at once
	done := burst(t, e, clk, job.JobID, 20)
	clk.release(time.Second)
	ev := s.update()
	var snap progress.Snapshot
	if err := json.Unmarshal([]byte(ev.data), &snap); err != nil {
		t.Fatalf("event data %q: %v", ev.data, err)
	}
	if snap.State != progress.Succeeded || snap.Seq != done.Seq {
		t.Fatalf("after the interval: %s seq %d, want the terminal seq %d alone", snap.State, snap.Seq, done.Seq)
	}
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
