package store

import (
	"time"

	"github.com/progressd/progressd/internal/progress"
)

// Stalls and abandoned jobs are found from two columns of the jobs table,
// each under a partial index, so that a sweep is an index range scan of
// the jobs due, not a scan of every job (SPEC part two, "Metadata,
// result, attempts, stalls"; jobs/lapse.go acts on them):
//
//   - due_at (Unix ms): the earliest deadline of the job's own limits —
//     its stall (progress.Snapshot.StallDue) and its abandon_after_seconds
//     — or NULL when it has neither;
//   - idle_since (Unix ms): for a job the server's --abandon-after
//     applies to (not terminal, not a pipeline job, no limit of its own),
//     its updated_at; else NULL. The limit is the server's, so it is
//     compared at the sweep (idle_since ≤ now − limit): a new
//     --abandon-after applies to every job at the next start.
//
// Both are written with the snapshot on every Create and Save, so they
// are as current as the durable copy (at most --flush-interval behind a
// report); the sweep checks the live snapshot before it acts. One
// exception: a Save keeps the stored idle_since while the new one is at
// most a step (IdleStep) after it, so a job that reports all the time
// does not rewrite its index entry at every flush: SQLite rewrites the
// entry of every indexed column an UPDATE sets, and on PostgreSQL an
// update that changes no indexed column can be HOT (no index written),
// 1.7× faster a batch (docs/benchmarks.md, "Stalls"). The stored value is then a lower bound, less than a step
// older than the true one, and the sweep asks for idle_since ≤ now −
// limit − step: never a job before its limit, at most a step after.

// maxIdleStep bounds IdleStep. A minute is 1/60 of the flushes of a job
// that reports every second (the default --flush-interval), which takes
// the index write off nearly all of them, and is 0.07% of the default
// 24h limit; a longer step would save little more and make the sweep
// later.
const maxIdleStep = time.Minute

// IdleStep is how much older than the job's updated_at the stored
// idle_since may be under a server limit of abandonAfter: a hundredth of
// the limit, at most a minute, so a short limit (a test's 200 ms) is
// still met within 1%. With the limit off (0) the column is not read, but
// a restart may turn it on: it is kept within the largest step.
func IdleStep(abandonAfter time.Duration) time.Duration {
	if abandonAfter <= 0 {
		return maxIdleStep
	}
	return min(abandonAfter/100, maxIdleStep)
}

// LapseColumns returns due_at and idle_since for s (nil for NULL).
func LapseColumns(s *progress.Snapshot) (dueAt, idleSince *int64) {
	var due time.Time
	if t, ok := s.StallDue(); ok {
		due = t
	}
	if s.AbandonAfter > 0 {
		if t, _, ok := s.AbandonDue(0); ok && (due.IsZero() || t.Before(due)) {
			due = t
		}
	} else if !s.State.Terminal() && s.Pipeline == "" {
		ms := s.UpdatedAt.UnixMilli()
		idleSince = &ms
	}
	if !due.IsZero() {
		ms := due.UnixMilli()
		dueAt = &ms
	}
	return dueAt, idleSince
}

// LapseSQL is the sweep's SELECTs, written once for both SQL stores.
type LapseSQL struct {
	prefix string
	bind   func(string) string
}

// NewLapseSQL returns the statements for tables named with prefix ("" or
// "progressd_"); dollar selects $1-style placeholders.
func NewLapseSQL(prefix string, dollar bool) LapseSQL {
	return LapseSQL{prefix: prefix, bind: func(q string) string { return bindDollar(q, dollar) }}
}

// Due selects the ids of up to a limit of jobs whose due_at has come:
// arguments now (Unix ms), limit.
func (q LapseSQL) Due() string {
	return q.bind(`SELECT id FROM ` + q.prefix + `jobs WHERE due_at <= ? ORDER BY due_at LIMIT ?`)
}

// Idle selects the ids of up to a limit of jobs idle since before a time:
// arguments before (Unix ms), limit.
func (q LapseSQL) Idle() string {
	return q.bind(`SELECT id FROM ` + q.prefix + `jobs WHERE idle_since <= ? ORDER BY idle_since LIMIT ?`)
}

// LapseQuery asks for the jobs a sweep at Now may have to act on.
type LapseQuery struct {
	Now time.Time
	// IdleBefore: jobs under the server's limit whose stored idle_since
	// is at or before it (now − limit − IdleStep(limit)); zero when
	// --abandon-after is off.
	IdleBefore time.Time
	Limit      int
}
