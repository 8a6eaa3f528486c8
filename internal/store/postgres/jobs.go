package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
)

// queries are the reads of package store's shared SQL, in this database's spelling.
var queries = store.SQL{Table: "progressd_jobs", Placeholder: store.DollarNumber}

// row is a snapshot ready to be written, encoded before any connection is
// taken from the pool.
type row struct {
	id, project, owner, state string
	seq                       int64
	createdAt, updatedAt      time.Time
	finishedAt                *time.Time
	snapshot                  string
}

func encode(s progress.Snapshot) (row, error) {
	if s.JobID == "" {
		return row{}, errors.New("snapshot has no job_id")
	}
	if s.Seq > math.MaxInt64 {
		return row{}, fmt.Errorf("job %s: seq %d does not fit in a PostgreSQL bigint", s.JobID, s.Seq)
	}
	b, err := s.AppendJSON(make([]byte, 0, 512)) // the wire form, without encoding/json's reflection
	if err != nil {
		return row{}, fmt.Errorf("job %s: encode snapshot: %w", s.JobID, err)
	}
	r := row{
		id:        s.JobID,
		project:   s.Project,
		owner:     s.Owner,
		state:     string(s.State),
		seq:       int64(s.Seq),
		createdAt: s.CreatedAt.Time,
		updatedAt: s.UpdatedAt.Time,
		snapshot:  string(b),
	}
	if s.FinishedAt != nil {
		t := s.FinishedAt.Time
		r.finishedAt = &t
	}
	return r, nil
}

func decode(id, text string) (progress.Snapshot, error) {
	s, err := store.DecodeSnapshot(id, text)
	if err != nil {
		return progress.Snapshot{}, fmt.Errorf("postgres: %w", err)
	}
	return s, nil
}

// Create inserts a new job; ErrExists if the id is taken.
func (s *Store) Create(ctx context.Context, snap progress.Snapshot) error {
	r, err := encode(snap)
	if err != nil {
		return fmt.Errorf("postgres: create: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO progressd_jobs (id, project, owner, state, seq, created_at, updated_at, finished_at, snapshot)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (id) DO NOTHING`,
		r.id, r.project, r.owner, r.state, r.seq, r.createdAt, r.updatedAt, r.finishedAt, r.snapshot)
	if err != nil {
		return fmt.Errorf("postgres: create job %s: %w", r.id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: create job %s: %w", r.id, store.ErrExists)
	}
	return nil
}

// lockRows locks the batch's rows in id order. Without it, two batches
// sharing jobs could lock them in different orders (the UPDATE's join
// order is the planner's choice) and deadlock; PostgreSQL would break the
// deadlock only after deadlock_timeout, by failing one batch.
const lockRows = `SELECT 1 FROM progressd_jobs WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`

// saveRows applies every snapshot of the batch whose seq is higher than
// the stored one. DISTINCT ON keeps the highest seq of a job sent twice in
// one batch: UPDATE … FROM would otherwise apply an arbitrary one of them.
// The seq condition is in the UPDATE itself, and PostgreSQL re-checks it
// against the newest row version after waiting for a concurrent writer,
// so a stale snapshot is skipped even when batches race.
const saveRows = `
	UPDATE progressd_jobs AS j
	SET state = u.state, seq = u.seq, updated_at = u.updated_at, finished_at = u.finished_at, snapshot = u.snapshot
	FROM (
		SELECT DISTINCT ON (id) *
		FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[], $5::timestamptz[], $6::text[])
			AS t(id, state, seq, updated_at, finished_at, snapshot)
		ORDER BY id, seq DESC
	) AS u
	WHERE j.id = u.id AND j.seq < u.seq`

// Save updates every job in snaps whose stored seq is lower. The batch is
// one round trip and one implicit transaction (a pgx batch ends in a
// single Sync): the row locks, in id order, then one UPDATE of all rows.
func (s *Store) Save(ctx context.Context, snaps []progress.Snapshot) error {
	if len(snaps) == 0 {
		return nil
	}
	n := len(snaps)
	ids, states, snapshots := make([]string, n), make([]string, n), make([]string, n)
	seqs := make([]int64, n)
	updated := make([]time.Time, n)
	finished := make([]*time.Time, n)
	for i, snap := range snaps {
		r, err := encode(snap)
		if err != nil {
			return fmt.Errorf("postgres: save: %w", err)
		}
		ids[i], states[i], seqs[i], updated[i], finished[i], snapshots[i] =
			r.id, r.state, r.seq, r.updatedAt, r.finishedAt, r.snapshot
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("postgres: save %d snapshots: %w", n, err)
	}

	b := &pgx.Batch{}
	b.Queue(lockRows, ids)
	b.Queue(saveRows, ids, states, seqs, updated, finished, snapshots)
	br := s.pool.SendBatch(ctx, b)
	_, err := br.Exec()
	if err == nil {
		_, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("postgres: save %d snapshots: %w", n, err)
	}
	return nil
}

// Get returns the stored snapshot of job id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (progress.Snapshot, error) {
	var text string
	err := s.pool.QueryRow(ctx, queries.Get(), id).Scan(&text)
	if isNoRows(err) {
		return progress.Snapshot{}, fmt.Errorf("postgres: job %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return progress.Snapshot{}, fmt.Errorf("postgres: get job %s: %w", id, err)
	}
	return decode(id, text)
}

// List returns one page of jobs, newest first. It reads one row more than
// the page holds to learn whether a next page exists, so the last page has
// no cursor even when it is full.
func (s *Store) List(ctx context.Context, q progress.Query) ([]progress.Snapshot, string, error) {
	query, args := queries.List(q)
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list jobs: %w", err)
	}
	defer rows.Close()

	jobs, next, err := store.ReadPage(rows, q.PageSize())
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list jobs: %w", err)
	}
	return jobs, next, nil
}
