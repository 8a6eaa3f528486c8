package postgres

import (
	"context"
	"fmt"

	"github.com/progressd/progressd/internal/store"
)

var lapseSQL = store.NewLapseSQL("progressd_", true)

// Lapsing implements store.Store: two index range scans, and act, by one
// node at a time: the transaction holds an advisory lock until act has
// returned (act writes on other connections of the pool; the transaction
// holds no row lock). A node that does not get the lock skips this round.
func (s *Store) Lapsing(ctx context.Context, q store.LapseQuery, act func([]string) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: find stalled or abandoned jobs: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	var got bool
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtextextended('progressd lapse ' || current_schema(), 0))`).Scan(&got); err != nil {
		return fmt.Errorf("postgres: find stalled or abandoned jobs: lock: %w", err)
	}
	if !got {
		return nil // another node is sweeping
	}
	var ids []string
	pick := func(query string, args ...any) error {
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	}
	err = pick(lapseSQL.Due(), q.Now.UnixMilli(), q.Limit)
	if err == nil && !q.IdleBefore.IsZero() {
		err = pick(lapseSQL.Idle(), q.IdleBefore.UnixMilli(), q.Limit)
	}
	if err != nil {
		return fmt.Errorf("postgres: find stalled or abandoned jobs: %w", err)
	}
	return act(ids) // the deferred rollback ends the transaction and the lock
}
