package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
)

// ChildTotals implements store.Store.
func (s *Store) ChildTotals(ctx context.Context, parent string) (progress.ChildTotals, error) {
	var t progress.ChildTotals
	c := &t.Counts
	err := s.pool.QueryRow(ctx, `
		SELECT version, total, queued, running, succeeded, failed, canceled, weight_sum, done_wp
		FROM progressd_job_children WHERE parent_id = $1`, parent).
		Scan(&t.Version, &c.Total, &c.Queued, &c.Running, &c.Succeeded, &c.Failed, &c.Canceled, &t.WeightSum, &t.DoneWP)
	if isNoRows(err) {
		return progress.ChildTotals{}, nil
	}
	if err != nil {
		return t, fmt.Errorf("postgres: children of %s: %w", parent, err)
	}
	return t, nil
}

// ActiveChildProgress implements store.Store.
func (s *Store) ActiveChildProgress(ctx context.Context, parent string) (float64, error) {
	var sum float64
	err := s.pool.QueryRow(ctx, `
		SELECT coalesce(sum(weight * progress), 0) FROM progressd_jobs
		WHERE parent_id = $1 AND state IN ('queued', 'running')`, parent).Scan(&sum)
	if err != nil {
		return 0, fmt.Errorf("postgres: progress of the children of %s: %w", parent, err)
	}
	return sum, nil
}

// DirtyGroups implements store.Store.
func (s *Store) DirtyGroups(ctx context.Context, before time.Time, limit int) ([]store.GroupMark, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT parent_id, version FROM progressd_job_children
		WHERE dirty_at IS NOT NULL AND dirty_at < $1 ORDER BY dirty_at LIMIT $2`, before.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: changed parents: %w", err)
	}
	marks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.GroupMark, error) {
		var m store.GroupMark
		err := r.Scan(&m.Parent, &m.Version)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: changed parents: %w", err)
	}
	return marks, nil
}

// CleanGroup implements store.Store.
func (s *Store) CleanGroup(ctx context.Context, parent string, version int64) error {
	if _, err := s.pool.Exec(ctx, `UPDATE progressd_job_children SET dirty_at = NULL WHERE parent_id = $1 AND version = $2`,
		parent, version); err != nil {
		return fmt.Errorf("postgres: mark the children of %s applied: %w", parent, err)
	}
	return nil
}

// Projects implements store.Store. Both orders are index range scans:
// progressd_projects_activity for all projects,
// progressd_project_owners_activity for one owner's.
func (s *Store) Projects(ctx context.Context, q progress.ProjectQuery) ([]progress.ProjectSummary, string, error) {
	table := "progressd_projects"
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.Owner != "" {
		table = "progressd_project_owners"
		where = append(where, "owner = "+arg(q.Owner))
	}
	if q.Cursor != "" {
		at, project, err := store.ParseProjectCursor(q.Cursor)
		if err != nil {
			return nil, "", err
		}
		where = append(where, "(last_activity_at, project) < ("+arg(at)+", "+arg(project)+")")
	}
	query := "SELECT project, queued, running, succeeded, failed, canceled, last_activity_at FROM " + table
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY last_activity_at DESC, project DESC LIMIT " + arg(q.PageSize()+1)
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list projects: %w", err)
	}
	defer rows.Close()
	page, next, err := store.ReadProjects(rows, q.PageSize())
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list projects: %w", err)
	}
	return page, next, nil
}
