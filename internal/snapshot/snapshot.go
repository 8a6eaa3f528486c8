// Package snapshot keeps the latest snapshot of every live job, and the
// recent jobs of each project and owner: the state a subscriber is sent
// first, and where every report's next snapshot is decided.
//
// Store has two implementations: Memory (one process) and Redis (several
// nodes). Update is the only way a snapshot changes, and it is atomic per
// job: the function it is given sees the latest snapshot and its result is
// stored with the next seq, or not at all. Finished jobs are kept for a
// while and then forgotten; the durable store has them for good.
// All methods are safe for concurrent use.
package snapshot

import (
	"context"
	"errors"

	"github.com/progressd/progressd/internal/progress"
)

// ErrNotFound is returned when the store holds no snapshot of the job. The
// job may still exist in the durable store: callers load it and Put it.
var ErrNotFound = errors.New("snapshot: job not in the snapshot store")

// Store holds the latest snapshot per job.
type Store interface {
	// Put stores s unless the store already holds a snapshot of that job
	// with a Seq ≥ s.Seq. It is how new and reloaded jobs enter the store.
	Put(ctx context.Context, s progress.Snapshot) error
	// Update calls fn with the latest snapshot of job id and stores what it
	// returns, atomically: no other update of that job happens in between.
	// fn must return a snapshot with Seq = prev.Seq+1. If fn returns an
	// error, nothing is stored and Update returns that error. It returns
	// ErrNotFound if the job is not in the store.
	Update(ctx context.Context, id string, fn func(prev progress.Snapshot) (progress.Snapshot, error)) (progress.Snapshot, error)
	// Get returns the latest snapshot of job id, or ErrNotFound.
	Get(ctx context.Context, id string) (progress.Snapshot, error)
	// Recent returns the jobs of a project (Owner empty) or of an owner
	// (Project empty): the active ones, newest first, at most
	// MaxRecentActive of them, then the most recently finished up to limit,
	// newest first.
	Recent(ctx context.Context, f progress.Filter, limit int) ([]progress.Snapshot, error)
	// Delete forgets job id (DELETE /api/v1/jobs/{id}, retention): its
	// snapshot and its place in the recent indices. Deleting a job the
	// store does not hold is not an error.
	Delete(ctx context.Context, id string) error
	// Ping reports whether the store answers, for /readyz.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}

// MaxRecentActive bounds the active jobs Recent returns, so a subscriber to
// a project with a runaway number of unfinished jobs gets a bounded first
// view (the newest), not an unbounded burst.
const MaxRecentActive = 1000
