package jobs_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/snapshot"
	"github.com/progressd/progressd/internal/store"
	"github.com/progressd/progressd/internal/store/sqlite"
)

// TestRecentDoesNotDependOnTheSnapshotStore: a service whose snapshot
// store starts cold (a restart: only the unfinished jobs warmed) or is
// down answers Recent as the one that wrote the jobs does, from the
// durable store; a project narrowed to one owner is not crowded out by
// other owners' newer jobs.
func TestRecentDoesNotDependOnTheSnapshotStore(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	wb := store.NewWriteBehind(db, 20*time.Millisecond, nil)
	t.Cleanup(func() {
		_ = wb.Close(ctx)
		_ = db.Close()
	})
	b := broker.NewLocal()
	defer b.Close()
	newService := func() *jobs.Service {
		return jobs.New(jobs.Config{Snapshots: snapshot.NewMemory(snapshot.MemoryOptions{}), DB: wb, Broker: b})
	}
	warm := newService()
	job := func(owner string, st progress.State) progress.Snapshot {
		s, err := warm.Create(ctx, owner, jobs.CreateRequest{Project: "p"})
		if err != nil {
			t.Fatal(err)
		}
		if st != "" {
			if s, err = warm.Report(ctx, s.JobID, progress.Report{State: &st}); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	a1 := job("alice", progress.Succeeded)
	aRunning := job("alice", "")
	a2 := job("alice", progress.Failed)
	var bobs []progress.Snapshot
	for range 3 {
		bobs = append(bobs, job("bob", progress.Canceled))
	}

	ids := func(list []progress.Snapshot) []string {
		var out []string
		for _, s := range list {
			out = append(out, s.JobID)
		}
		return out
	}
	cold := newService() // as a restarted node's: unfinished jobs warmed, no finished ones
	if err := cold.Warm(ctx); err != nil {
		t.Fatal(err)
	}
	down := jobs.New(jobs.Config{Snapshots: recentDown{snapshot.NewMemory(snapshot.MemoryOptions{})}, DB: wb, Broker: b})
	for name, svc := range map[string]*jobs.Service{"warm": warm, "cold": cold, "snapshot store down": down} {
		for _, tc := range []struct {
			f     progress.Filter
			limit int
			want  []progress.Snapshot
		}{
			{progress.Filter{Project: "p", Owner: "alice"}, 2, []progress.Snapshot{aRunning, a2, a1}},
			{progress.Filter{Project: "p", Owner: "alice"}, 1, []progress.Snapshot{aRunning, a2}},
			{progress.Filter{Project: "p"}, 2, []progress.Snapshot{aRunning, bobs[2], bobs[1]}},
			{progress.Filter{Owner: "bob"}, 10, []progress.Snapshot{bobs[2], bobs[1], bobs[0]}},
			{progress.Filter{Project: "other"}, 10, nil},
		} {
			got, err := svc.Recent(ctx, tc.f, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), ids(tc.want)) {
				t.Errorf("%s: Recent(%+v, %d) = %v, want %v", name, tc.f, tc.limit, ids(got), ids(tc.want))
			}
			for i, s := range got {
				if s.State != tc.want[i].State {
					t.Errorf("%s: Recent(%+v): job %s is %s, want %s", name, tc.f, s.JobID, s.State, tc.want[i].State)
				}
			}
		}
	}
}

// recentDown is a memory snapshot store whose Recent fails, as Redis does
// when it is down.
type recentDown struct{ snapshot.Store }

func (recentDown) Recent(context.Context, progress.Filter, int) ([]progress.Snapshot, error) {
	return nil, errors.New("connection refused")
}
