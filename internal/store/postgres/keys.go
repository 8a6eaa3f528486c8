package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/progressd/progressd/internal/store"
)

// keyQueries are package store's idempotency key SQL for this database.
var keyQueries = store.KeySQL{Table: "progressd_idempotency_keys", Placeholder: store.DollarNumber}

// CreateKeyed creates k.First and records k, or returns the key the owner
// holds with ErrKeyTaken. Two creates racing with one key, on any nodes:
// the second INSERT waits on the first's uncommitted key row, then finds
// it (ON CONFLICT … WHERE affects nothing) and reads it.
func (s *Store) CreateKeyed(ctx context.Context, k store.IdempotencyKey, expiredBefore time.Time) (store.IdempotencyKey, error) {
	return s.create(ctx, k.First, &k, expiredBefore)
}

// recordKey inserts k for the job of row r in tx, or returns the key the
// owner holds with ErrKeyTaken.
func recordKey(ctx context.Context, tx pgx.Tx, k store.IdempotencyKey, r row, expiredBefore time.Time) (store.IdempotencyKey, error) {
	tag, err := tx.Exec(ctx, keyQueries.Insert(), k.Owner, k.Key, k.BodyHash, r.id, r.snapshot, k.CreatedAt, expiredBefore)
	if err != nil {
		return store.IdempotencyKey{}, fmt.Errorf("postgres: record idempotency key of job %s: %w", r.id, err)
	}
	if tag.RowsAffected() == 1 {
		return k, nil
	}
	held := store.IdempotencyKey{Owner: k.Owner, Key: k.Key}
	var jobID, response string
	if err := tx.QueryRow(ctx, keyQueries.Select(), k.Owner, k.Key).Scan(&held.BodyHash, &jobID, &response, &held.CreatedAt); err != nil {
		return store.IdempotencyKey{}, fmt.Errorf("postgres: read idempotency key: %w", err)
	}
	if held.First, err = decode(jobID, response); err != nil {
		return store.IdempotencyKey{}, err
	}
	held.CreatedAt = held.CreatedAt.UTC()
	return held, store.ErrKeyTaken
}

// ExpireKeys deletes at most limit keys created before before.
func (s *Store) ExpireKeys(ctx context.Context, before time.Time, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, keyQueries.Expire(), before, limit)
	if err != nil {
		return 0, fmt.Errorf("postgres: expire idempotency keys: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
