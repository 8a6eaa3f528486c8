package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/progressd/progressd/internal/progress"
)

// ErrNotFinished is returned by Delete for a job that is not terminal.
var ErrNotFinished = errors.New("store: the job has not finished")

// PurgeBatch is the most jobs one retention transaction deletes; PurgePaced
// usually deletes far fewer (see PurgeBatchTime).
const PurgeBatch = 500

// Deleted is a job Purge deleted: what the caller needs to forget it and
// to take it out of its parent's live sum.
type Deleted struct {
	ID     string
	Parent string  // the parent's id; "" for a job without one
	Share  float64 // weight·progress: what it added to its parent's sums
}

// PurgeSQL deletes finished jobs with their tags, log lines and children
// totals, and moves the project counters, written once for both SQL
// stores. A deleted child also leaves its parent's children totals (its
// count, weight and share), in the same transaction: a parent's counts
// are of the children it has, so they agree with GET ?parent= and a
// parent waiting for N children keeps waiting for N that exist (see
// jobs.Service.Delete for the parent's snapshot).
type PurgeSQL struct {
	prefix string
	bind   func(string) string
	lock   string // appended to the read of the parents' rows
}

// NewPurgeSQL returns the statements for tables named with prefix
// ("" or "progressd_"); dollar selects $1-style placeholders.
func NewPurgeSQL(prefix string, dollar bool) PurgeSQL {
	q := PurgeSQL{prefix: prefix, bind: func(q string) string { return bindDollar(q, dollar) }}
	if dollar {
		// PostgreSQL: the parents' rows are read FOR SHARE, so a parent
		// deleted at the same moment waits for this transaction (which then
		// finds it and moves its totals before they are deleted with it) or
		// is gone before (and its totals are not brought back). SQLite has
		// one writer: nothing runs in between.
		q.lock = " FOR SHARE"
	}
	return q
}

const terminalStates = `('succeeded', 'failed', 'canceled')`

// PickOld selects (id, snapshot) of up to a limit of jobs finished before
// a time (Unix ms): arguments before, limit. It reads the finished_at
// index (migration "finished_at"), oldest first.
func (q PurgeSQL) PickOld() string {
	return q.bind(`SELECT id, snapshot FROM ` + q.prefix + `jobs WHERE finished_at < ? AND state IN ` +
		terminalStates + ` ORDER BY finished_at LIMIT ?`)
}

// PickOne selects (id, snapshot) of one job: argument id.
func (q PurgeSQL) PickOne() string {
	return q.bind(`SELECT id, snapshot FROM ` + q.prefix + `jobs WHERE id = ?`)
}

// Purge deletes the jobs picked (from PickOld or PickOne) that are
// terminal, in the caller's transaction, with their tags, log lines and
// children totals, a few set-wide statements for the whole batch, and
// returns the deleted jobs and the counter changes (projects, and the
// parents of deleted children that are not deleted too) to apply with
// TallySQL in the same transaction. query runs a statement returning rows
// (DELETE … RETURNING id, which both databases have), so only the jobs
// this transaction deleted are counted, whatever ran meanwhile.
func (q PurgeSQL) Purge(ctx context.Context, query func(ctx context.Context, sql string, args ...any) (Rows, func(), error),
	exec func(ctx context.Context, sql string, args ...any) (int64, error), picked []progress.Snapshot) ([]Deleted, *Tally, error) {
	t := NewTally()
	if len(picked) == 0 {
		return nil, t, nil
	}
	ids := make([]any, len(picked))
	for i, s := range picked {
		ids[i] = s.JobID
	}
	gone, err := q.column(ctx, query, `DELETE FROM `+q.prefix+`jobs WHERE id IN `+in(len(ids))+` AND state IN `+terminalStates+` RETURNING id`, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("delete %d jobs: %w", len(ids), err)
	}
	var out []Deleted
	var deleted, parents []any
	for _, s := range picked {
		if !gone[s.JobID] {
			continue // not terminal, or gone meanwhile
		}
		for _, tag := range s.Tags {
			if _, err := exec(ctx, q.bind(`DELETE FROM `+q.prefix+`job_tags WHERE tag = ? AND job_id = ?`), tag, s.JobID); err != nil {
				return nil, nil, fmt.Errorf("delete the tags of job %s: %w", s.JobID, err)
			}
		}
		t.touch(s.Project, s.Owner, 0, s.State, -1)
		out = append(out, Deleted{ID: s.JobID, Parent: s.ParentID, Share: progress.LiveContribution(&s)})
		deleted = append(deleted, s.JobID)
		if s.ParentID != "" && !gone[s.ParentID] {
			parents = append(parents, s.ParentID)
		}
	}
	if len(deleted) == 0 {
		return nil, t, nil
	}
	if len(parents) > 0 {
		// Only parents that still exist: the totals of one deleted before
		// went with it, and an upsert would bring them back.
		have, err := q.column(ctx, query, `SELECT id FROM `+q.prefix+`jobs WHERE id IN `+in(len(parents))+q.lock, parents)
		if err != nil {
			return nil, nil, fmt.Errorf("read the parents of %d deleted jobs: %w", len(parents), err)
		}
		for _, s := range picked {
			if gone[s.JobID] && have[s.ParentID] {
				t.Left(&s)
			}
		}
	}
	for _, stmt := range []string{
		`DELETE FROM ` + q.prefix + `job_logs WHERE job_id IN ` + in(len(deleted)),
		`DELETE FROM ` + q.prefix + `job_children WHERE parent_id IN ` + in(len(deleted)),
	} {
		if _, err := exec(ctx, q.bind(stmt), deleted...); err != nil {
			return nil, nil, fmt.Errorf("delete %d jobs: %w", len(deleted), err)
		}
	}
	return out, t, nil
}

// in is a list of n placeholders in parentheses.
func in(n int) string { return "(" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")" }

// column runs a statement whose rows are one text column and returns the
// set of values.
func (q PurgeSQL) column(ctx context.Context, query func(ctx context.Context, sql string, args ...any) (Rows, func(), error),
	stmt string, args []any) (map[string]bool, error) {
	rows, done, err := query(ctx, q.bind(stmt), args...)
	if err != nil {
		return nil, err
	}
	defer done()
	set := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		set[id] = true
	}
	return set, rows.Err()
}

// ReadPicked decodes the rows of PickOld or PickOne.
func ReadPicked(rows Rows) ([]progress.Snapshot, error) {
	var out []progress.Snapshot
	for rows.Next() {
		var id, text string
		if err := rows.Scan(&id, &text); err != nil {
			return nil, err
		}
		// Only what Purge reads; the whole snapshot would cost more.
		var s progress.Snapshot
		if err := json.Unmarshal([]byte(text), &struct {
			Project  *string         `json:"project"`
			Owner    *string         `json:"owner"`
			State    *progress.State `json:"state"`
			Tags     *[]string       `json:"tags"`
			ParentID *string         `json:"parent_id"`
			Weight   *float64        `json:"weight"`
			Progress *float64        `json:"progress"`
		}{&s.Project, &s.Owner, &s.State, &s.Tags, &s.ParentID, &s.Weight, &s.Progress}); err != nil {
			return nil, fmt.Errorf("job %s: stored snapshot is not valid JSON: %w", id, err)
		}
		s.JobID = id
		out = append(out, s)
	}
	return out, rows.Err()
}

// DeleteOutcome is the answer of a store's Delete of job id, given the
// jobs its purge deleted: nil if it deleted the job, else, from a fresh
// read with get, ErrNotFound or ErrNotFinished.
func DeleteOutcome(ctx context.Context, id string, deleted []Deleted, err error, get func(context.Context, string) (progress.Snapshot, error)) error {
	switch {
	case err != nil:
		return err
	case len(deleted) == 1:
		return nil
	}
	if _, err := get(ctx, id); err != nil {
		return err
	}
	return fmt.Errorf("delete job %s: %w", id, ErrNotFinished)
}

// PurgeBatchTime is what a retention batch aims to take on a store whose
// purge holds back every other writer while it runs (SQLite's one
// writer): a report's write waits at most about this long behind it.
// BenchmarkPurgeWhileSaving measured a write-behind Save p99 of 282 ms
// with fixed batches of 500 against 11 ms without a purge.
const PurgeBatchTime = 5 * time.Millisecond

// Purger is what PurgePaced needs of a Store (or of a WriteBehind).
type Purger interface {
	Purge(ctx context.Context, before time.Time, limit int) ([]Deleted, error)
}

// PurgeTimer is a Purger whose batches should take about
// PurgeBatchTime() each, because other writers wait for the whole batch.
// A store that does not implement it (PostgreSQL: a batch locks only the
// rows it deletes, and the project's counter rows for the few statements
// before its commit) gets batches of PurgeBatch.
type PurgeTimer interface {
	PurgeBatchTime() time.Duration
}

// PurgePaced deletes jobs finished before before in batches, and after
// each waits as long as it took, so the writes that queued behind it go
// first and the purge takes at most about half of the database's time.
// On a PurgeTimer the batches aim at its PurgeBatchTime: the size follows
// the measured time per job (a smoothed mean; from 1 to PurgeBatch), so
// batches stay short whatever a job costs to delete — its log lines, tags
// and indexes, a loaded machine. each (if not nil) gets every batch's
// deleted jobs. It returns how many it deleted, when a batch finds fewer
// old jobs than its size (none left, or on PostgreSQL another node
// sweeping), or when ctx ends (ctx.Err()).
func PurgePaced(ctx context.Context, s Purger, before time.Time, each func([]Deleted)) (int, error) {
	var target time.Duration
	if t, ok := s.(PurgeTimer); ok {
		target = t.PurgeBatchTime()
	}
	total, size := 0, PurgeBatch
	if target > 0 {
		size = 50
	}
	var perJob time.Duration // smoothed time per deleted job
	for {
		start := time.Now()
		gone, err := s.Purge(ctx, before, size)
		took := time.Since(start)
		total += len(gone)
		if each != nil && len(gone) > 0 {
			each(gone)
		}
		switch {
		case err != nil && ctx.Err() != nil:
			return total, ctx.Err() // the batch was cut short and rolled back
		case err != nil || len(gone) < size:
			return total, err
		}
		if target > 0 {
			sample := took / time.Duration(len(gone))
			if perJob == 0 {
				perJob = sample
			} else {
				perJob = (7*perJob + 3*sample) / 10
			}
			// At most double at once: one quick batch on a noisy machine
			// does not make the next one long.
			size = max(1, min(PurgeBatch, 2*size, int(target/max(perJob, time.Microsecond))))
		}
		t := time.NewTimer(took)
		select {
		case <-ctx.Done():
			t.Stop()
			return total, ctx.Err()
		case <-t.C:
		}
	}
}
