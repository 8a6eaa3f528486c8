// Package logs keeps the most recent log lines of every live job: the
// lines a late viewer is shown first and that live subscribers continue
// from. It is the log-line counterpart of package snapshot and lives in
// the same tier: Memory in one process, redislogs when several nodes
// share Redis. Lines are numbered here, atomically per job, so n counts a
// job's lines from 1 with no gaps whatever node appended them.
//
// A Store keeps at most Keep lines per job (the oldest go first) and only
// while the job runs: once a job is terminal its lines are written to the
// durable store (Writer) and the ring is dropped; reads then come from
// the database. All methods are safe for concurrent use.
package logs

import (
	"context"
	"errors"

	"github.com/progressd/progressd/internal/progress"
)

// ErrUnknown is returned when the store holds no ring for the job: a job
// with no line yet on this tier, or one this tier forgot (a restart of the
// process or of Redis). The caller seeds it from the durable store.
var ErrUnknown = errors.New("logs: no lines of this job in the log store")

// Store keeps a bounded ring of log lines per job.
type Store interface {
	// Append numbers lines from the job's next n, keeps them (dropping the
	// oldest beyond the store's Keep) and returns them numbered. The lines'
	// N is ignored. It returns ErrUnknown if the job has no ring: Seed it
	// first.
	Append(ctx context.Context, job string, lines []progress.LogLine) ([]progress.LogLine, error)
	// Seed creates the job's ring holding lines (ascending n, the durable
	// store's newest) with last as the job's newest n, unless a ring
	// exists already, which is kept as it is.
	Seed(ctx context.Context, job string, lines []progress.LogLine, last int64) error
	// Read returns up to limit kept lines with n > after (after < 0: from
	// the first kept line, never truncated). ErrUnknown if no ring.
	Read(ctx context.Context, job string, after int64, limit int) (progress.LogPage, error)
	// Drop forgets the job's ring (its job is terminal and its lines are
	// durable). Reads of a dropped ring may still succeed for a short
	// while on a shared store, whose other nodes may be writing behind.
	Drop(ctx context.Context, job string) error
	// Close releases the store's resources.
	Close() error
}
