package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/progressd/progressd/internal/store"
)

// keyQueries are package store's idempotency key SQL for this database.
var keyQueries = store.KeySQL{Table: "idempotency_keys", Placeholder: store.QuestionMark}

// CreateKeyed creates k.First and records k, or returns the key the owner
// holds with ErrKeyTaken. The transaction begins IMMEDIATE (the DSN's
// _txlock), so two creates with one key are serialized by the write lock.
func (s *Store) CreateKeyed(ctx context.Context, k store.IdempotencyKey, expiredBefore time.Time) (store.IdempotencyKey, error) {
	return s.create(ctx, k.First, &k, expiredBefore)
}

// recordKey inserts k for the job of row r in tx, or returns the key the
// owner holds with ErrKeyTaken.
func recordKey(ctx context.Context, tx *sql.Tx, k store.IdempotencyKey, r row, expiredBefore time.Time) (store.IdempotencyKey, error) {
	res, err := tx.ExecContext(ctx, keyQueries.Insert(),
		k.Owner, k.Key, k.BodyHash, r.id, r.snapshot, k.CreatedAt.UnixMilli(), expiredBefore.UnixMilli())
	if err != nil {
		return store.IdempotencyKey{}, fmt.Errorf("sqlite: record idempotency key of job %s: %w", r.id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return store.IdempotencyKey{}, fmt.Errorf("sqlite: record idempotency key of job %s: %w", r.id, err)
	}
	if n == 1 {
		return k, nil
	}
	held := store.IdempotencyKey{Owner: k.Owner, Key: k.Key}
	var jobID, response string
	var created int64
	if err := tx.QueryRowContext(ctx, keyQueries.Select(), k.Owner, k.Key).Scan(&held.BodyHash, &jobID, &response, &created); err != nil {
		return store.IdempotencyKey{}, fmt.Errorf("sqlite: read idempotency key: %w", err)
	}
	if held.First, err = decode(jobID, response); err != nil {
		return store.IdempotencyKey{}, err
	}
	held.CreatedAt = time.UnixMilli(created).UTC()
	return held, store.ErrKeyTaken
}

// ExpireKeys deletes at most limit keys created before before.
func (s *Store) ExpireKeys(ctx context.Context, before time.Time, limit int) (int, error) {
	res, err := s.db.ExecContext(ctx, keyQueries.Expire(), before.UnixMilli(), limit)
	if err != nil {
		return 0, fmt.Errorf("sqlite: expire idempotency keys: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: expire idempotency keys: %w", err)
	}
	return int(n), nil
}
