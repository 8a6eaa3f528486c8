package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/snapshot"
	"github.com/progressd/progressd/internal/testsvc"
)

// TestDeletedChildLeavesItsParent: a deleted finished child drops out of
// its running parent's counts (they count the children it has, as GET
// ?parent= lists them), the parent's progress does not go down, and a
// parent that expects N children waits for N that exist before it
// finishes by itself — it would have finished one child early if the
// deleted one still counted.
func TestDeletedChildLeavesItsParent(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t, snapshot.MemoryOptions{})
	parent := mustCreate(t, svc, "alice", jobs.CreateRequest{Project: "p", ExpectedChildren: 3})
	a := mustCreate(t, svc, "alice", jobs.CreateRequest{ParentID: parent.JobID})
	b := mustCreate(t, svc, "alice", jobs.CreateRequest{ParentID: parent.JobID})
	if _, err := svc.Report(ctx, a.JobID, progress.Report{State: ptr(progress.Succeeded)}); err != nil {
		t.Fatal(err)
	}
	testsvc.Eventually(t, 10*time.Second, "the parent to count a's success", func() bool {
		p := get(t, svc, parent.JobID)
		return p.Children != nil && p.Children.Succeeded == 1
	})
	shown := get(t, svc, parent.JobID).Progress // 1 of 3 announced: 1/3
	if err := svc.Delete(ctx, a.JobID, nil); err != nil {
		t.Fatal(err)
	}
	testsvc.Eventually(t, 10*time.Second, "the parent to drop a", func() bool {
		p := get(t, svc, parent.JobID)
		return p.Children != nil && *p.Children == progress.Children{Total: 1, Queued: 1}
	})
	if p := get(t, svc, parent.JobID); p.Progress != shown {
		t.Fatalf("parent progress %v after the delete, want %v kept (it never goes down)", p.Progress, shown)
	}

	c := mustCreate(t, svc, "alice", jobs.CreateRequest{ParentID: parent.JobID})
	for _, id := range []string{b.JobID, c.JobID} {
		if _, err := svc.Report(ctx, id, progress.Report{State: ptr(progress.Succeeded)}); err != nil {
			t.Fatal(err)
		}
	}
	testsvc.Eventually(t, 10*time.Second, "the parent to count b and c", func() bool {
		p := get(t, svc, parent.JobID)
		return p.Children != nil && p.Children.Succeeded == 2
	})
	// The counts and the finish are one update: counting 2 of 2 created
	// without finishing means the deleted child no longer counts.
	if p := get(t, svc, parent.JobID); p.State != progress.Running || p.Children.Total != 2 {
		t.Fatalf("parent %s with %+v after 2 of 3 expected children: want running", p.State, *p.Children)
	}
	d := mustCreate(t, svc, "alice", jobs.CreateRequest{ParentID: parent.JobID})
	if _, err := svc.Report(ctx, d.JobID, progress.Report{State: ptr(progress.Succeeded)}); err != nil {
		t.Fatal(err)
	}
	testsvc.Eventually(t, 10*time.Second, "the parent to succeed", func() bool { return get(t, svc, parent.JobID).State.Terminal() })
	if p := get(t, svc, parent.JobID); p.State != progress.Succeeded || *p.Children != (progress.Children{Total: 3, Succeeded: 3}) || p.Progress != 1 {
		t.Fatalf("parent %s %+v at %v, want succeeded with 3 of 3", p.State, *p.Children, p.Progress)
	}
}
