package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
)

var logSQL = store.LogSQL{Logs: "progressd_job_logs", Jobs: "progressd_jobs", Placeholder: store.DollarNumber}

// SaveLogs writes a batch of lines in one transaction, keeping at most
// keep lines per job.
func (s *Store) SaveLogs(ctx context.Context, batch []progress.JobLogs, keep int) error {
	if len(batch) == 0 {
		return nil
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: %s: save log lines: begin: %w", s.where, err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	err = store.LogInserts(batch, keep,
		func(rows int, args []any) error { _, err := tx.Exec(ctx, logSQL.Insert(rows), args...); return err },
		func(args ...any) error { _, err := tx.Exec(ctx, logSQL.Trim(), args...); return err })
	if err != nil {
		return fmt.Errorf("postgres: %s: save log lines: %w", s.where, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: %s: save log lines: commit: %w", s.where, err)
	}
	return nil
}

// ReadLogs returns up to limit of a job's stored lines after after.
func (s *Store) ReadLogs(ctx context.Context, job string, after int64, limit int) (progress.LogPage, error) {
	p := progress.LogPage{Lines: []progress.LogLine{}}
	if err := s.pool.QueryRow(ctx, logSQL.Bounds(), job, job).Scan(&p.First, &p.Last); err != nil {
		return p, fmt.Errorf("postgres: %s: read log lines of job %s: %w", s.where, job, err)
	}
	from, truncated := store.LogWindow(p.First, after)
	p.Truncated = truncated
	rows, err := s.pool.Query(ctx, logSQL.Page(), job, from, limit)
	if err != nil {
		return p, fmt.Errorf("postgres: %s: read log lines of job %s: %w", s.where, job, err)
	}
	defer rows.Close()
	for rows.Next() {
		var l progress.LogLine
		var ms int64
		if err := rows.Scan(&l.N, &ms, &l.Stream, &l.Stage, &l.Text); err != nil {
			return p, fmt.Errorf("postgres: %s: read log lines of job %s: %w", s.where, job, err)
		}
		l.T = progress.At(time.UnixMilli(ms))
		p.Lines = append(p.Lines, l)
	}
	if err := rows.Err(); err != nil {
		return p, fmt.Errorf("postgres: %s: read log lines of job %s: %w", s.where, job, err)
	}
	return p, nil
}
