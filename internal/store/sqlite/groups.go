package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
)

// tallySQL applies a store.Tally in a transaction.
var tallySQL = store.NewTallySQL("", false)

// prepareStatements prepares tallySQL's, Save's and the lapse sweep's
// statements once: the driver would parse each on every Exec, which was
// 13% of a batch's CPU (BenchmarkBatchHTTP), and the sweep's two queries,
// run every second, were a third of an idle server's CPU.
func (s *Store) prepareStatements(ctx context.Context) error {
	s.stmts = map[string]*sql.Stmt{}
	for _, q := range append(tallySQL.Statements(), saveSameState, saveSameStateIdle, saveReadState, saveNewState, logInsertFull, logTrim, lapseSQL.Due(), lapseSQL.Idle()) {
		st, err := s.db.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("sqlite: prepare the statements of saves and counters: %w", err)
		}
		s.stmts[q] = st
	}
	return nil
}

// applyTally writes t inside tx.
func (s *Store) applyTally(ctx context.Context, tx *sql.Tx, t *store.Tally) error {
	return tallySQL.Apply(ctx, func(ctx context.Context, q string, args ...any) error {
		_, err := tx.StmtContext(ctx, s.stmts[q]).ExecContext(ctx, args...)
		return err
	}, t)
}

// ChildTotals implements store.Store.
func (s *Store) ChildTotals(ctx context.Context, parent string) (progress.ChildTotals, error) {
	var t progress.ChildTotals
	c := &t.Counts
	err := s.db.QueryRowContext(ctx, `
		SELECT version, total, queued, running, succeeded, failed, canceled, weight_sum, done_wp
		FROM job_children WHERE parent_id = ?`, parent).
		Scan(&t.Version, &c.Total, &c.Queued, &c.Running, &c.Succeeded, &c.Failed, &c.Canceled, &t.WeightSum, &t.DoneWP)
	if errors.Is(err, sql.ErrNoRows) {
		return progress.ChildTotals{}, nil
	}
	if err != nil {
		return t, fmt.Errorf("sqlite: children of %s: %w", parent, err)
	}
	return t, nil
}

// ActiveChildProgress implements store.Store.
func (s *Store) ActiveChildProgress(ctx context.Context, parent string) (float64, error) {
	var sum float64
	err := s.db.QueryRowContext(ctx, `
		SELECT coalesce(sum(weight * progress), 0) FROM jobs
		WHERE parent_id = ? AND state IN ('queued', 'running')`, parent).Scan(&sum)
	if err != nil {
		return 0, fmt.Errorf("sqlite: progress of the children of %s: %w", parent, err)
	}
	return sum, nil
}

// DirtyGroups implements store.Store.
func (s *Store) DirtyGroups(ctx context.Context, before time.Time, limit int) ([]store.GroupMark, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT parent_id, version FROM job_children
		WHERE dirty_at IS NOT NULL AND dirty_at < ? ORDER BY dirty_at LIMIT ?`, before.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: changed parents: %w", err)
	}
	defer rows.Close()
	var out []store.GroupMark
	for rows.Next() {
		var m store.GroupMark
		if err := rows.Scan(&m.Parent, &m.Version); err != nil {
			return nil, fmt.Errorf("sqlite: changed parents: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: changed parents: %w", err)
	}
	return out, nil
}

// CleanGroup implements store.Store.
func (s *Store) CleanGroup(ctx context.Context, parent string, version int64) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE job_children SET dirty_at = NULL WHERE parent_id = ? AND version = ?`,
		parent, version); err != nil {
		return fmt.Errorf("sqlite: mark the children of %s applied: %w", parent, err)
	}
	return nil
}

// Projects implements store.Store. Both orders are index range scans:
// projects_activity for all projects, project_owners_activity for one
// owner's.
func (s *Store) Projects(ctx context.Context, q progress.ProjectQuery) ([]progress.ProjectSummary, string, error) {
	query := `SELECT project, queued, running, succeeded, failed, canceled, last_activity_at FROM projects`
	var where []string
	var args []any
	if q.Owner != "" {
		query = `SELECT project, queued, running, succeeded, failed, canceled, last_activity_at FROM project_owners`
		where = append(where, "owner = ?")
		args = append(args, q.Owner)
	}
	if q.Cursor != "" {
		at, project, err := store.ParseProjectCursor(q.Cursor)
		if err != nil {
			return nil, "", err
		}
		where = append(where, "(last_activity_at, project) < (?, ?)")
		args = append(args, at, project)
	}
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY last_activity_at DESC, project DESC LIMIT ?"
	args = append(args, q.PageSize()+1)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list projects: %w", err)
	}
	defer rows.Close()
	page, next, err := store.ReadProjects(rows, q.PageSize())
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list projects: %w", err)
	}
	return page, next, nil
}
