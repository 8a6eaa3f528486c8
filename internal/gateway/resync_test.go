package gateway

import (
	"testing"

	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/progress"
)

// TestResyncDeliversWhatTheBrokerMissed: updates that never reached the
// gateway (as during a broker outage) arrive with Resync, on every channel
// that covers them, terminal state included; other users' jobs stay hidden.
func TestResyncDeliversWhatTheBrokerMissed(t *testing.T) {
	t.Parallel()
	deaf := broker.NewLocal() // the gateway listens here; the service publishes elsewhere
	t.Cleanup(func() { deaf.Close() })
	e := setup(t, func(c *Config) { c.Broker = deaf })
	mine := e.createJob(t, "alice", "p1")
	theirs := e.createJob(t, "bob", "p1")

	c := e.dialAs(t, "alice")
	c.subscribe("job:" + mine.JobID)
	if f := c.next(); f.Job.Seq != 1 {
		t.Fatalf("first snapshot: %+v", f.Job)
	}
	c.subscribe("project:p1")
	if f := c.next(); f.Job.JobID != mine.JobID {
		t.Fatalf("project snapshot: %+v", f.Job)
	}

	e.report(t, mine.JobID, 0.5, "")
	done := e.report(t, mine.JobID, 0.5, progress.Succeeded)
	e.report(t, theirs.JobID, 0.7, "")

	e.gw.Resync()
	got := map[string]progress.Snapshot{}
	for len(got) < 2 {
		f := c.next()
		if f.Job.JobID != mine.JobID {
			t.Fatalf("resync leaked another user's job on %s: %+v", f.Channel, f.Job)
		}
		got[f.Channel] = f.Job
	}
	for ch, s := range got {
		if s.Seq != done.Seq || s.State != progress.Succeeded {
			t.Fatalf("%s after resync: seq %d %s, want seq %d succeeded", ch, s.Seq, s.State, done.Seq)
		}
	}
}
