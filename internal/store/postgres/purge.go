package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/progressd/progressd/internal/store"
)

var purgeSQL = store.NewPurgeSQL("progressd_", true)

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, id string) error {
	gone, err := s.purge(ctx, false, purgeSQL.PickOne(), id)
	return store.DeleteOutcome(ctx, id, gone, err, s.Get)
}

// Purge implements store.Store: one node at a time, by an advisory lock
// held for the transaction; a node that does not get it deletes nothing
// this round.
func (s *Store) Purge(ctx context.Context, before time.Time, limit int) ([]store.Deleted, error) {
	return s.purge(ctx, true, purgeSQL.PickOld(), before, limit)
}

func (s *Store) purge(ctx context.Context, exclusive bool, pick string, args ...any) ([]store.Deleted, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: delete jobs: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if exclusive {
		var got bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtextextended('progressd purge ' || current_schema(), 0))`).Scan(&got); err != nil {
			return nil, fmt.Errorf("postgres: delete jobs: lock: %w", err)
		}
		if !got {
			return nil, nil // another node is sweeping
		}
	}
	rows, err := tx.Query(ctx, pick, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: delete jobs: pick: %w", err)
	}
	picked, err := store.ReadPicked(rows)
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("postgres: delete jobs: %w", err)
	}
	deleted, t, err := purgeSQL.Purge(ctx, func(ctx context.Context, q string, args ...any) (store.Rows, func(), error) {
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return nil, nil, err
		}
		return rows, rows.Close, nil
	}, func(ctx context.Context, q string, args ...any) (int64, error) {
		tag, err := tx.Exec(ctx, q, args...)
		return tag.RowsAffected(), err
	}, picked)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := tallySQL.Apply(ctx, func(ctx context.Context, q string, args ...any) error {
		_, err := tx.Exec(ctx, q, args...)
		return err
	}, t); err != nil {
		return nil, fmt.Errorf("postgres: delete jobs: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("postgres: delete jobs: commit: %w", err)
	}
	return deleted, nil
}
