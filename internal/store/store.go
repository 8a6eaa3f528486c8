// Package store is the durable record of every job: its latest snapshot and
// timestamps, kept across restarts. Implementations live in subpackages
// (sqlite, and postgres when scaling out) and all pass the one suite in
// storetest.
//
// The durable store is not on the hot path of progress: WriteBehind sits in
// front of it so that state changes and terminal snapshots are written before
// the reply while intermediate progress is written at most about once a
// second per job. All methods are safe for concurrent use.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/progressd/progressd/internal/progress"
)

// ErrNotFound is returned when no job has the given id.
var ErrNotFound = errors.New("store: job not found")

// ErrExists is returned by Create when a job with the same id exists.
var ErrExists = errors.New("store: job already exists")

// Store is a durable job store.
type Store interface {
	// Create records a new job. It returns ErrExists if the id is taken.
	Create(ctx context.Context, s progress.Snapshot) error
	// Save writes each snapshot over the stored one of the same job, but
	// only where its Seq is higher than the stored Seq: a late write never
	// replaces a newer snapshot. Jobs that do not exist are skipped.
	Save(ctx context.Context, snaps []progress.Snapshot) error
	// CreateKeyed is Create of k.First that also records idempotency key k
	// for it, in one transaction. If k.Owner holds k.Key from a create at
	// or after expiredBefore, it creates nothing and returns that earlier
	// key (its BodyHash and First) with ErrKeyTaken; an older key is
	// replaced. See keys.go.
	CreateKeyed(ctx context.Context, k IdempotencyKey, expiredBefore time.Time) (IdempotencyKey, error)
	// ExpireKeys deletes at most limit idempotency keys created before
	// before, and returns how many it deleted.
	ExpireKeys(ctx context.Context, before time.Time, limit int) (int, error)
	// Get returns the stored snapshot of one job, or ErrNotFound.
	Get(ctx context.Context, id string) (progress.Snapshot, error)
	// List returns jobs newest first (by job id, which is time-ordered),
	// filtered by q (paged by q.PageSize), and the cursor of the next page ("" on the last page).
	List(ctx context.Context, q progress.Query) (jobs []progress.Snapshot, next string, err error)

	// Create of a job with a parent checks the parent inside its
	// transaction: ErrParentNotFound, or ErrParentFinished if it is
	// terminal. Create and Save keep the durable counters of Tally (a
	// parent's children, the project list) in the transaction of the
	// write, so they are exact whatever node writes.

	// ChildTotals returns the durable totals of parent's direct children
	// (zero totals for a job without children).
	ChildTotals(ctx context.Context, parent string) (progress.ChildTotals, error)
	// ActiveChildProgress returns Σ weight·progress of parent's children
	// that are not terminal, as stored (intermediate progress is written
	// behind, so it is as old as the last flush).
	ActiveChildProgress(ctx context.Context, parent string) (float64, error)
	// DirtyGroups returns up to limit parents whose totals changed before
	// before and were not marked clean since, oldest change first.
	DirtyGroups(ctx context.Context, before time.Time, limit int) ([]GroupMark, error)
	// CleanGroup marks parent's totals as applied, if they are still at
	// version.
	CleanGroup(ctx context.Context, parent string, version int64) error
	// Projects returns a page of the projects with jobs of q.Owner (all
	// projects when it is ""), most recent activity first.
	Projects(ctx context.Context, q progress.ProjectQuery) ([]progress.ProjectSummary, string, error)

	// SaveLogs writes log lines (numbered already), skipping lines it
	// holds (a retried batch) and jobs that no longer exist, and keeps
	// at most keep lines per job (the newest).
	SaveLogs(ctx context.Context, batch []progress.JobLogs, keep int) error
	// ReadLogs returns up to limit of a job's stored lines with n > after
	// (after < 0: from the first kept one, never truncated), First and
	// Last of what is stored (0 without lines).
	ReadLogs(ctx context.Context, job string, after int64, limit int) (progress.LogPage, error)

	// Delete deletes one finished job with its tags and log lines:
	// ErrNotFound, or ErrNotFinished for a job that is not terminal.
	Delete(ctx context.Context, id string) error
	// Purge deletes up to limit jobs finished before before (see
	// PurgeSQL), oldest first, and returns them. On PostgreSQL it deletes
	// nothing while another node's Purge runs, so nodes sharing a
	// database take turns. PurgePaced sizes and spaces the calls.
	Purge(ctx context.Context, before time.Time, limit int) ([]Deleted, error)

	// Lapsing calls act with the ids of up to q.Limit jobs whose due_at
	// has come, then of up to q.Limit whose idle_since is at or before
	// q.IdleBefore (unless it is zero): the jobs a sweep for stalls and
	// abandoned jobs looks at (see lapse.go), and returns act's error. On
	// PostgreSQL one node at a time sweeps: act runs while this node holds
	// an advisory lock, and a node that does not get it calls nothing.
	Lapsing(ctx context.Context, q LapseQuery, act func(ids []string) error) error
	// SetIdleStep makes Save keep a job's stored idle_since while the new
	// one is less than step after it (IdleStep; lapse.go). 0, the
	// default, writes it at every Save.
	SetIdleStep(step time.Duration)

	// Ping reports whether the database answers, for /readyz.
	Ping(ctx context.Context) error
	// Close releases the database. The store is unusable afterwards.
	Close() error
}
