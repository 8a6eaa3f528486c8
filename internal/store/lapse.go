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
// report); the sweep checks the live snapshot before it acts.

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
	// IdleBefore: jobs under the server's limit that have not changed
	// since; zero when --abandon-after is off.
	IdleBefore time.Time
	Limit      int
}
