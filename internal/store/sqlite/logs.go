package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
)

var logSQL = store.LogSQL{Logs: "job_logs", Jobs: "jobs", Placeholder: store.QuestionMark}

// SaveLogs' statements, prepared once (prepareStatements): a full chunk
// of lines and the trim; a last, shorter chunk is prepared as it comes.
var (
	logInsertFull = logSQL.Insert(store.LogInsertRows)
	logTrim       = logSQL.Trim()
)

// SaveLogs writes a batch of lines in one transaction, keeping at most
// keep lines per job.
func (s *Store) SaveLogs(ctx context.Context, batch []progress.JobLogs, keep int) error {
	if len(batch) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: save log lines: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	full := tx.StmtContext(ctx, s.stmts[logInsertFull])
	trim := tx.StmtContext(ctx, s.stmts[logTrim])
	err = store.LogInserts(batch, keep,
		func(rows int, args []any) error {
			if rows == store.LogInsertRows {
				_, err := full.ExecContext(ctx, args...)
				return err
			}
			_, err := tx.ExecContext(ctx, logSQL.Insert(rows), args...)
			return err
		},
		func(args ...any) error { _, err := trim.ExecContext(ctx, args...); return err })
	if err != nil {
		return fmt.Errorf("sqlite: save log lines: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: save log lines: commit: %w", err)
	}
	return nil
}

// ReadLogs returns up to limit of a job's stored lines after after.
func (s *Store) ReadLogs(ctx context.Context, job string, after int64, limit int) (progress.LogPage, error) {
	p := progress.LogPage{Lines: []progress.LogLine{}}
	if err := s.db.QueryRowContext(ctx, logSQL.Bounds(), job, job).Scan(&p.First, &p.Last); err != nil {
		return p, fmt.Errorf("sqlite: read log lines of job %s: %w", job, err)
	}
	from, truncated := store.LogWindow(p.First, after)
	p.Truncated = truncated
	rows, err := s.db.QueryContext(ctx, logSQL.Page(), job, from, limit)
	if err != nil {
		return p, fmt.Errorf("sqlite: read log lines of job %s: %w", job, err)
	}
	defer rows.Close()
	for rows.Next() {
		var l progress.LogLine
		var ms int64
		if err := rows.Scan(&l.N, &ms, &l.Stream, &l.Stage, &l.Text); err != nil {
			return p, fmt.Errorf("sqlite: read log lines of job %s: %w", job, err)
		}
		l.T = progress.At(time.UnixMilli(ms))
		p.Lines = append(p.Lines, l)
	}
	if err := rows.Err(); err != nil && err != sql.ErrNoRows {
		return p, fmt.Errorf("sqlite: read log lines of job %s: %w", job, err)
	}
	return p, nil
}
