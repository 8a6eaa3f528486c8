package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/progressd/progressd/internal/progress"
)

// ErrNotFinished is returned by Delete for a job that is not terminal.
var ErrNotFinished = errors.New("store: the job has not finished")

// PurgeBatch is the most jobs one retention transaction deletes: the
// transaction holding SQLite's write lock (or the PostgreSQL rows) ends
// within tens of milliseconds (BenchmarkPurgeWhileSaving: about 65 ms for
// 500 on SQLite), so the writes of reports interleave between batches.
const PurgeBatch = 500

// PurgeSQL deletes finished jobs with their tags, log lines and children
// totals, and moves the project counters, written once for both SQL
// stores. Deleted jobs leave their parent's children totals as they were:
// those count what happened, and a parent is usually deleted with its
// children anyway (they finish together and age together).
type PurgeSQL struct {
	prefix string
	bind   func(string) string
}

// NewPurgeSQL returns the statements for tables named with prefix
// ("" or "progressd_"); dollar selects $1-style placeholders.
func NewPurgeSQL(prefix string, dollar bool) PurgeSQL {
	return PurgeSQL{prefix: prefix, bind: func(q string) string { return bindDollar(q, dollar) }}
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
// returns the deleted snapshots and the counter changes to apply with
// TallySQL in the same transaction. query runs a statement returning rows
// (DELETE … RETURNING id, which both databases have), so only the jobs
// this transaction deleted are counted, whatever ran meanwhile.
func (q PurgeSQL) Purge(ctx context.Context, query func(ctx context.Context, sql string, args ...any) (Rows, func(), error),
	exec func(ctx context.Context, sql string, args ...any) (int64, error), picked []progress.Snapshot) ([]progress.Snapshot, *Tally, error) {
	t := NewTally()
	if len(picked) == 0 {
		return nil, t, nil
	}
	ids := make([]any, len(picked))
	for i, s := range picked {
		ids[i] = s.JobID
	}
	in := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ") + ")"
	rows, done, err := query(ctx, q.bind(`DELETE FROM `+q.prefix+`jobs WHERE id IN `+in+` AND state IN `+terminalStates+` RETURNING id`), ids...)
	if err != nil {
		return nil, nil, fmt.Errorf("delete %d jobs: %w", len(ids), err)
	}
	gone := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			done()
			return nil, nil, fmt.Errorf("delete %d jobs: %w", len(ids), err)
		}
		gone[id] = true
	}
	err = rows.Err()
	done()
	if err != nil {
		return nil, nil, fmt.Errorf("delete %d jobs: %w", len(ids), err)
	}
	var out []progress.Snapshot
	var deleted []any
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
		out = append(out, s)
		deleted = append(deleted, s.JobID)
	}
	if len(deleted) == 0 {
		return nil, t, nil
	}
	in = "(" + strings.TrimSuffix(strings.Repeat("?, ", len(deleted)), ", ") + ")"
	for _, stmt := range []string{
		`DELETE FROM ` + q.prefix + `job_logs WHERE job_id IN ` + in,
		`DELETE FROM ` + q.prefix + `job_children WHERE parent_id IN ` + in,
	} {
		if _, err := exec(ctx, q.bind(stmt), deleted...); err != nil {
			return nil, nil, fmt.Errorf("delete %d jobs: %w", len(deleted), err)
		}
	}
	return out, t, nil
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
			Project *string         `json:"project"`
			Owner   *string         `json:"owner"`
			State   *progress.State `json:"state"`
			Tags    *[]string       `json:"tags"`
		}{&s.Project, &s.Owner, &s.State, &s.Tags}); err != nil {
			return nil, fmt.Errorf("job %s: stored snapshot is not valid JSON: %w", id, err)
		}
		s.JobID = id
		out = append(out, s)
	}
	return out, rows.Err()
}

// DeleteOutcome is the answer of a store's Delete of job id, given the
// ids its purge deleted: nil if it deleted the job, else, from a fresh
// read with get, ErrNotFound or ErrNotFinished.
func DeleteOutcome(ctx context.Context, id string, deleted []string, err error, get func(context.Context, string) (progress.Snapshot, error)) error {
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
