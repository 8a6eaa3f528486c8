package gateway

import (
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/progress"
)

// burst reports n updates of job 10 ms apart (so that, written at once,
// each would go out on its own), then succeeded, and returns the terminal
// snapshot.
func burst(t *testing.T, e *env, job string, n int) progress.Snapshot {
	t.Helper()
	for k := 1; k <= n; k++ {
		e.report(t, job, float64(k)/float64(n+1), "")
		time.Sleep(10 * time.Millisecond)
	}
	return e.report(t, job, 0, progress.Succeeded)
}

// TestMinWriteIntervalSpacesWebSocketWrites: with MinWriteInterval, a
// burst of updates right after a write reaches the client as (about) one
// update, the newest — the terminal one; an update to a connection that
// has been quiet for longer goes out at once.
func TestMinWriteIntervalSpacesWebSocketWrites(t *testing.T) {
	t.Parallel()
	const interval = time.Second
	e := setup(t, func(c *Config) { c.MinWriteInterval = interval })

	// A quiet connection: the update is not held back.
	quiet := e.createJob(t, "alice", "p")
	c := e.dialAs(t, "alice")
	c.subscribe("job:" + quiet.JobID)
	if f := c.next(); f.Job.Seq != quiet.Seq { // the current snapshot
		t.Fatalf("first update seq %d, want %d", f.Job.Seq, quiet.Seq)
	}
	time.Sleep(interval + 100*time.Millisecond)
	sent := time.Now()
	want := e.report(t, quiet.JobID, 0.5, "")
	if f := c.next(); f.Job.Seq != want.Seq {
		t.Fatalf("got seq %d, want %d", f.Job.Seq, want.Seq)
	}
	if d := time.Since(sent); d > interval*7/10 {
		t.Errorf("an update to a connection quiet for longer than the interval took %v; it should go out at once", d)
	}

	// A burst right after that write: held until the interval is over,
	// then the newest snapshot alone.
	done := burst(t, e, quiet.JobID, 20) // 200 ms, within the interval
	updates := 0
	for {
		f := c.next()
		updates++
		if f.Job.State == progress.Succeeded {
			if f.Job.Seq != done.Seq {
				t.Fatalf("terminal seq %d, want %d", f.Job.Seq, done.Seq)
			}
			break
		}
	}
	if updates > 2 {
		t.Errorf("a burst of 21 updates within the interval came as %d writes; want at most 2", updates)
	}
	if value(e.gw.m.coalesced) < 19 {
		t.Errorf("coalesced = %v, want the burst's older updates (≥ 19)", value(e.gw.m.coalesced))
	}
}

// TestMinWriteIntervalSpacesSSEWrites is the SSE twin: the stream of a
// burst ends with the terminal snapshot after at most two events.
func TestMinWriteIntervalSpacesSSEWrites(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.MinWriteInterval = time.Second })
	job := e.createJob(t, "alice", "p")
	s := e.stream(t, "/api/v1/jobs/"+job.JobID+"/events?token="+url.QueryEscape(e.token(t, "alice", false, time.Hour)), nil)
	s.update()                         // the current snapshot, written at once
	done := burst(t, e, job.JobID, 20) // 200 ms, within the interval
	events := 0
	for {
		ev := s.update()
		events++
		var snap progress.Snapshot
		if err := json.Unmarshal([]byte(ev.data), &snap); err != nil {
			t.Fatalf("event data %q: %v", ev.data, err)
		}
		if snap.State == progress.Succeeded {
			if snap.Seq != done.Seq {
				t.Fatalf("terminal seq %d, want %d", snap.Seq, done.Seq)
			}
			break
		}
	}
	if events > 2 {
		t.Errorf("a burst of 21 updates came as %d events; want at most 2", events)
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
