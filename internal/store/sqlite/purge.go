package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/progressd/progressd/internal/store"
)

var purgeSQL = store.NewPurgeSQL("", false)

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, id string) error {
	gone, err := s.purge(ctx, purgeSQL.PickOne(), id)
	return store.DeleteOutcome(ctx, id, gone, err, s.Get)
}

// Purge implements store.Store. SQLite has one writer at a time, so
// nodes sharing a file take turns by its lock.
func (s *Store) Purge(ctx context.Context, before time.Time, limit int) ([]store.Deleted, error) {
	return s.purge(ctx, purgeSQL.PickOld(), before.UnixMilli(), limit)
}

// PurgeBatchTime implements store.PurgeTimer: a purge transaction holds
// SQLite's one write lock from its first delete to its commit, so every
// report's write waits for the whole batch.
func (s *Store) PurgeBatchTime() time.Duration { return store.PurgeBatchTime }

// purge deletes the jobs pick selects, in one (immediate) transaction.
func (s *Store) purge(ctx context.Context, pick string, args ...any) ([]store.Deleted, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: delete jobs: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, pick, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: delete jobs: pick: %w", err)
	}
	picked, err := store.ReadPicked(rows)
	_ = rows.Close()
	if err != nil {
		return nil, fmt.Errorf("sqlite: delete jobs: %w", err)
	}
	deleted, t, err := purgeSQL.Purge(ctx, func(ctx context.Context, q string, args ...any) (store.Rows, func(), error) {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, nil, err
		}
		return rows, func() { _ = rows.Close() }, nil
	}, func(ctx context.Context, q string, args ...any) (int64, error) {
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}, picked)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if err := s.applyTally(ctx, tx, t); err != nil {
		return nil, fmt.Errorf("sqlite: delete jobs: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlite: delete jobs: commit: %w", err)
	}
	return deleted, nil
}
