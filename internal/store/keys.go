package store

import (
	"errors"
	"time"

	"github.com/progressd/progressd/internal/progress"
)

// Idempotency keys make a create safe to retry: a client that sent
// POST /api/v1/jobs with an Idempotency-Key and lost the answer (a timeout,
// a 503) sends it again, and gets the job the first request made instead
// of a second job — and a second run of a pipeline. The key is recorded in
// the same transaction as the job, under a primary key of (owner, key), so
// two creates racing with one key make exactly one job on any number of
// nodes sharing the database, and a restart forgets nothing.

// ErrKeyTaken is returned by CreateKeyed when the owner's key was used by
// an earlier create that has not expired; nothing was created.
var ErrKeyTaken = errors.New("store: idempotency key already used")

// IdempotencyKey is one create's Idempotency-Key as the store keeps it.
type IdempotencyKey struct {
	Owner string
	Key   string
	// BodyHash identifies the request the key was first sent with: the
	// same key with another body is a client's mistake, not a retry.
	BodyHash string
	// First is the answer the first create gave: the job as created.
	First     progress.Snapshot
	CreatedAt time.Time
}

// KeySQL is the SQL of the idempotency keys table, the same for SQLite and
// PostgreSQL but for the table names and placeholders (see SQL). The
// table is (owner, idem_key, body_hash, job_id, response, created_at) with
// primary key (owner, idem_key) and an index on created_at.
type KeySQL struct {
	Table       string // the keys table
	Placeholder func(n int) string
}

// Insert records a key unless the owner holds it already: its arguments
// are owner, key, body_hash, job_id, response, created_at, and the expiry
// horizon, before which a held key counts as free and is replaced. It
// affects no row when the key is taken.
func (q KeySQL) Insert() string {
	p := q.Placeholder
	return "INSERT INTO " + q.Table + " (owner, idem_key, body_hash, job_id, response, created_at) VALUES (" +
		p(1) + ", " + p(2) + ", " + p(3) + ", " + p(4) + ", " + p(5) + ", " + p(6) + ")" +
		" ON CONFLICT (owner, idem_key) DO UPDATE SET body_hash = excluded.body_hash, job_id = excluded.job_id," +
		" response = excluded.response, created_at = excluded.created_at" +
		" WHERE " + q.Table + ".created_at < " + p(7)
}

// Select reads a held key: its arguments are owner and key; it returns
// body_hash, job_id, response and created_at.
func (q KeySQL) Select() string {
	return "SELECT body_hash, job_id, response, created_at FROM " + q.Table +
		" WHERE owner = " + q.Placeholder(1) + " AND idem_key = " + q.Placeholder(2)
}

// Expire deletes at most a batch of keys created before a time: its
// arguments are that time and the batch size. Small batches keep each
// transaction short, so creates never wait long behind the cleanup.
func (q KeySQL) Expire() string {
	return "DELETE FROM " + q.Table + " WHERE (owner, idem_key) IN (SELECT owner, idem_key FROM " + q.Table +
		" WHERE created_at < " + q.Placeholder(1) + " LIMIT " + q.Placeholder(2) + ")"
}
