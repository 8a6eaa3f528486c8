package jobs_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/jobs/jobstest"
	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/snapshot"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newService(t *testing.T, opts snapshot.MemoryOptions) (*jobs.Service, *broker.Local) {
	t.Helper()
	p := jobstest.New(t, jobstest.Options{Snapshots: snapshot.NewMemory(opts)})
	return p.Jobs, p.Broker
}

// TestEvictedJobsComeBackFromTheDurableStore: finished jobs the memory store
// forgot are still readable, and still final.
func TestEvictedJobsComeBackFromTheDurableStore(t *testing.T) {
	ctx := context.Background()
	svc, _ := newService(t, snapshot.MemoryOptions{MaxFinished: 1})
	done := progress.Succeeded
	var ids []string
	for i := 0; i < 3; i++ {
		s, err := svc.Create(ctx, "alice", jobs.CreateRequest{Project: "p"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Report(ctx, s.JobID, progress.Report{State: &done}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.JobID)
	}
	got, err := svc.Get(ctx, ids[0])
	if err != nil || got.State != progress.Succeeded {
		t.Fatalf("evicted job: %+v, %v", got, err)
	}
	p := 0.5
	if _, err := svc.Report(ctx, ids[0], progress.Report{Progress: &p}); !errors.Is(err, progress.ErrJobFinished) {
		t.Fatalf("report to an evicted finished job: %v", err)
	}
	if _, err := svc.Get(ctx, "missing"); !errors.Is(err, jobs.ErrNotFound) {
		t.Fatalf("unknown job: %v", err)
	}
}

// TestPublishesEveryChange: each accepted report reaches the broker once,
// with the snapshot the reply carried, not yet encoded.
func TestPublishesEveryChange(t *testing.T) {
	ctx := context.Background()
	svc, b := newService(t, snapshot.MemoryOptions{})
	var mu sync.Mutex
	var got []broker.Update
	cancel := b.Subscribe(func(u broker.Update) {
		mu.Lock()
		got = append(got, u)
		mu.Unlock()
	})
	defer cancel()
	s, err := svc.Create(ctx, "alice", jobs.CreateRequest{Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	p := 0.25
	r, err := svc.Report(ctx, s.JobID, progress.Report{Progress: &p})
	if err != nil {
		t.Fatal(err)
	}
	bad := 2.0
	if _, err := svc.Report(ctx, s.JobID, progress.Report{Progress: &bad}); err == nil {
		t.Fatal("progress 2 accepted")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].Snapshot.Seq != 1 || got[1].Snapshot.Seq != r.Seq {
		t.Fatalf("published %d updates: %+v", len(got), got)
	}
	// The encoding is left to the broker or the gateway, which encode
	// only what someone watches (hub.publishTo, redisbroker.Publish).
	if len(got[1].Data) != 0 || got[1].Snapshot.Progress != 0.25 {
		t.Fatalf("published %+v: want the snapshot, not encoded", got[1])
	}
}
