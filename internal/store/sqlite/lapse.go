package sqlite

import (
	"context"
	"fmt"

	"github.com/progressd/progressd/internal/store"
)

var lapseSQL = store.NewLapseSQL("", false)

// Lapsing implements store.Store: two index range scans (jobs_due_at,
// jobs_idle_since), outside any transaction, since act writes through
// the store's one connection.
func (s *Store) Lapsing(ctx context.Context, q store.LapseQuery, act func([]string) error) error {
	ids, err := s.pickIDs(ctx, nil, lapseSQL.Due(), q.Now.UnixMilli(), q.Limit)
	if err == nil && !q.IdleBefore.IsZero() {
		ids, err = s.pickIDs(ctx, ids, lapseSQL.Idle(), q.IdleBefore.UnixMilli(), q.Limit)
	}
	if err != nil {
		return fmt.Errorf("sqlite: find stalled or abandoned jobs: %w", err)
	}
	return act(ids)
}

func (s *Store) pickIDs(ctx context.Context, ids []string, query string, args ...any) ([]string, error) {
	rows, err := s.stmts[query].QueryContext(ctx, args...) // prepared (prepareStatements)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
