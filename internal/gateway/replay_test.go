package gateway

import (
	"testing"

	"github.com/progressd/progressd/internal/progress"
)

// TestProjectReplayIsTheCallersJobs: a user subscribing to a project is
// sent its own most recently finished jobs even when other users finished
// more jobs there since (they are not visible to it, so they must not
// take the places of the bounded replay).
func TestProjectReplayIsTheCallersJobs(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.RecentLimit = 2 })
	var mine []string
	for range 2 {
		s := e.createJob(t, "alice", "p")
		e.report(t, s.JobID, 0, progress.Succeeded)
		mine = append(mine, s.JobID)
	}
	for range 3 {
		s := e.createJob(t, "bob", "p")
		e.report(t, s.JobID, 0, progress.Failed)
	}
	c := e.dialAs(t, "alice")
	c.subscribe("project:p")
	got := map[string]bool{}
	for range mine {
		f := c.next()
		if f.Job.Owner != "alice" || !f.Job.State.Terminal() {
			t.Fatalf("replayed %+v, want alice's finished jobs", f.Job)
		}
		got[f.Job.JobID] = true
	}
	for _, id := range mine {
		if !got[id] {
			t.Fatalf("job %s was not replayed; got %v", id, got)
		}
	}
}
