package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/progressd/progressd/internal/progress"
)

// ErrNotFinished is returned by Delete for a job that is not terminal.
var ErrNotFinished = errors.New("store: the job has not finished")

// PurgeBatch is the most jobs one retention statement deletes: small
// enough that the transaction holding SQLite's write lock (or the
// PostgreSQL rows) ends within milliseconds, so reports written meanwhile
// wait at most that long.
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

// Purge deletes the jobs in rows (from PickOld or PickOne) that are
// terminal, in the caller's transaction, with their tags, log lines and
// children totals, and returns the deleted snapshots and the counter
// changes to apply with TallySQL in the same transaction. A job that is
// not terminal is skipped (ErrNotFinished when it is the only one asked
// for is the caller's to say).
func (q PurgeSQL) Purge(ctx context.Context, exec func(ctx context.Context, query string, args ...any) (int64, error), picked []progress.Snapshot) ([]progress.Snapshot, *Tally, error) {
	t := NewTally()
	var out []progress.Snapshot
	for _, s := range picked {
		n, err := exec(ctx, q.bind(`DELETE FROM `+q.prefix+`jobs WHERE id = ? AND state IN `+terminalStates), s.JobID)
		if err != nil {
			return nil, nil, fmt.Errorf("delete job %s: %w", s.JobID, err)
		}
		if n == 0 {
			continue // not terminal, or gone meanwhile
		}
		for _, tag := range s.Tags {
			if _, err := exec(ctx, q.bind(`DELETE FROM `+q.prefix+`job_tags WHERE tag = ? AND job_id = ?`), tag, s.JobID); err != nil {
				return nil, nil, fmt.Errorf("delete the tags of job %s: %w", s.JobID, err)
			}
		}
		for _, stmt := range []string{
			`DELETE FROM ` + q.prefix + `job_logs WHERE job_id = ?`,
			`DELETE FROM ` + q.prefix + `job_children WHERE parent_id = ?`,
		} {
			if _, err := exec(ctx, q.bind(stmt), s.JobID); err != nil {
				return nil, nil, fmt.Errorf("delete job %s: %w", s.JobID, err)
			}
		}
		t.touch(s.Project, s.Owner, 0, s.State, -1)
		out = append(out, s)
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
