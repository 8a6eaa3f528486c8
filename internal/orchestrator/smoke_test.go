package orchestrator_test

import (
	"testing"
	"time"

	"github.com/progressd/progressd/internal/node/nodetest"
	"github.com/progressd/progressd/internal/progress"
)

func TestDemoPipelineSucceeds(t *testing.T) {
	t.Parallel()
	s := nodetest.Start(t, nodetest.Options{})
	snap := s.Create(t, "p1", "demo", nil)
	done := s.WaitTerminal(t, snap.JobID, 30*time.Second)
	if done.State != progress.Succeeded {
		t.Fatalf("state %s, error %v", done.State, done.Error)
	}
	t.Logf("took %s", done.FinishedAt.Sub(done.StartedAt.Time))
}
