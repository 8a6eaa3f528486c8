package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
)

// queries are the reads of package store's shared SQL, in this database's spelling.
var queries = store.SQL{Table: "progressd_jobs", Tags: "progressd_job_tags", Placeholder: store.DollarNumber}

// row is a snapshot ready to be written, encoded before any connection is
// taken from the pool.
type row struct {
	id, project, owner, state string
	seq                       int64
	createdAt, updatedAt      time.Time
	finishedAt                *time.Time
	snapshot                  string
	parentID                  *string
	weight, progress          float64
	dueAt, idleSince          *int64 // store.LapseColumns
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
		weight:    s.Weight,
		progress:  s.Progress,
	}
	if s.ParentID != "" {
		r.parentID = &s.ParentID
	}
	if s.FinishedAt != nil {
		t := s.FinishedAt.Time
		r.finishedAt = &t
	}
	r.dueAt, r.idleSince = store.LapseColumns(&s)
	return r, nil
}

func decode(id, text string) (progress.Snapshot, error) {
	s, err := store.DecodeSnapshot(id, text)
	if err != nil {
		return progress.Snapshot{}, fmt.Errorf("postgres: %w", err)
	}
	return s, nil
}

// Create inserts a new job, its tags and its share of the counters in one
// transaction; ErrExists if the id is taken, ErrParentNotFound or
// ErrParentFinished for a child whose parent is gone or terminal. The
// parent's row is read FOR SHARE: its terminal state cannot commit between
// the check and the child's insert.
func (s *Store) Create(ctx context.Context, snap progress.Snapshot) error {
	_, err := s.create(ctx, snap, nil, time.Time{})
	return err
}

// create is Create, recording key first in the same transaction if one is
// given (CreateKeyed): a key that is taken ends it with ErrKeyTaken.
func (s *Store) create(ctx context.Context, snap progress.Snapshot, key *store.IdempotencyKey, expiredBefore time.Time) (store.IdempotencyKey, error) {
	r, err := encode(snap)
	if err != nil {
		return store.IdempotencyKey{}, fmt.Errorf("postgres: create: %w", err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return store.IdempotencyKey{}, fmt.Errorf("postgres: create job %s: begin: %w", r.id, err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if key != nil {
		if held, err := recordKey(ctx, tx, *key, r, expiredBefore); err != nil {
			return held, err
		}
	}
	if snap.ParentID != "" {
		var state string
		err := tx.QueryRow(ctx, `SELECT state FROM progressd_jobs WHERE id = $1 FOR SHARE`, snap.ParentID).Scan(&state)
		switch {
		case isNoRows(err):
			return store.IdempotencyKey{}, fmt.Errorf("postgres: create job %s under %s: %w", r.id, snap.ParentID, store.ErrParentNotFound)
		case err != nil:
			return store.IdempotencyKey{}, fmt.Errorf("postgres: create job %s: read parent: %w", r.id, err)
		case progress.State(state).Terminal():
			return store.IdempotencyKey{}, fmt.Errorf("postgres: create job %s under %s: %w", r.id, snap.ParentID, store.ErrParentFinished)
		}
	}
	tag, err := tx.Exec(ctx, `
		INSERT INTO progressd_jobs (id, project, owner, state, seq, created_at, updated_at, finished_at, snapshot, parent_id, weight, progress, due_at, idle_since)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
		ON CONFLICT (id) DO NOTHING`,
		r.id, r.project, r.owner, r.state, r.seq, r.createdAt, r.updatedAt, r.finishedAt, r.snapshot,
		r.parentID, r.weight, r.progress, r.dueAt, r.idleSince)
	if err != nil {
		return store.IdempotencyKey{}, fmt.Errorf("postgres: create job %s: %w", r.id, err)
	}
	if tag.RowsAffected() == 0 {
		return store.IdempotencyKey{}, fmt.Errorf("postgres: create job %s: %w", r.id, store.ErrExists)
	}
	if len(snap.Tags) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO progressd_job_tags (tag, job_id, owner) SELECT unnest($1::text[]), $2, $3`,
			snap.Tags, r.id, r.owner); err != nil {
			return store.IdempotencyKey{}, fmt.Errorf("postgres: create job %s: tags: %w", r.id, err)
		}
	}
	t := store.NewTally()
	t.Created(&snap)
	if err := tallySQL.Apply(ctx, func(ctx context.Context, q string, args ...any) error {
		_, err := tx.Exec(ctx, q, args...)
		return err
	}, t); err != nil {
		return store.IdempotencyKey{}, fmt.Errorf("postgres: create job %s: %w", r.id, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return store.IdempotencyKey{}, fmt.Errorf("postgres: create job %s: commit: %w", r.id, err)
	}
	if key != nil {
		return *key, nil
	}
	return store.IdempotencyKey{}, nil
}

// tallySQL applies a store.Tally in a transaction.
var tallySQL = store.NewTallySQL("progressd_", true)

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
//
// idle_since stays as stored while the new one is at most a step ($13,
// ms; SetIdleStep) after it: an indexed column that keeps its value
// leaves the row's update eligible for HOT (no index entries written)
// when no other indexed column changes.
//
// Its result is the rows it moved from not terminal to terminal
// (store.Ended) or from not stalled to stalled (store.Stalled, whose
// stored snapshot is parsed only for a stalled one), decided from o, the
// row as it was.
//
// The same statement moves the durable counters (store.Tally's, here in
// SQL): the UPDATE returns each written row's state before (o, read after
// lockRows took the row locks, so nothing changed it since) and after, and
// the upserts add the differences to the parent's totals and the project
// rows. Locks are taken in one order everywhere (job rows, then parents'
// totals, then project and owner rows, then project rows, each in key
// order), as Create takes them too, or concurrent writers deadlock. The
// sub-statements of a WITH run in no set order, so each upsert reads the
// previous one's output (the count(*) joins) to run after it.
const saveRows = `
	WITH u AS (
		SELECT DISTINCT ON (id) *
		FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[], $5::timestamptz[], $6::text[],
			$7::float8[], $8::bigint[], $10::bigint[], $11::bigint[], $12::bool[])
			AS t(id, state, seq, updated_at, finished_at, snapshot, progress, updated_ms, due_at, idle_since, stalled)
		ORDER BY id, seq DESC
	), upd AS (
		UPDATE progressd_jobs AS j
		SET state = u.state, seq = u.seq, updated_at = u.updated_at, finished_at = u.finished_at,
			snapshot = u.snapshot, progress = u.progress, due_at = u.due_at,
			idle_since = CASE WHEN u.idle_since - j.idle_since BETWEEN 0 AND $13::bigint - 1 THEN j.idle_since ELSE u.idle_since END
		FROM u JOIN progressd_jobs AS o ON o.id = u.id
		WHERE j.id = u.id AND j.seq < u.seq
		RETURNING j.id, j.seq, j.parent_id, j.weight, j.project, j.owner, o.state AS old, u.state AS new, u.progress, u.updated_ms,
			CASE WHEN u.stalled THEN coalesce(o.snapshot::json->>'stalled', '') <> 'true' ELSE false END AS stalls
	), d AS (
		SELECT *,
			(new = 'queued')::int - (old = 'queued')::int AS dq,
			(new = 'running')::int - (old = 'running')::int AS dr,
			(new = 'succeeded')::int - (old = 'succeeded')::int AS ds,
			(new = 'failed')::int - (old = 'failed')::int AS df,
			(new = 'canceled')::int - (old = 'canceled')::int AS dc,
			CASE WHEN new IN ('succeeded', 'failed', 'canceled') AND old NOT IN ('succeeded', 'failed', 'canceled')
				THEN weight * progress ELSE 0 END AS done
		FROM upd
	), grp AS (
		INSERT INTO progressd_job_children AS g
			(parent_id, version, total, queued, running, succeeded, failed, canceled, weight_sum, done_wp, dirty_at)
		SELECT parent_id, count(*), 0, sum(dq), sum(dr), sum(ds), sum(df), sum(dc), 0, sum(done), $9
		FROM d WHERE parent_id IS NOT NULL AND old <> new GROUP BY parent_id ORDER BY parent_id
		ON CONFLICT (parent_id) DO UPDATE SET
			version = g.version + excluded.version,
			queued = g.queued + excluded.queued, running = g.running + excluded.running,
			succeeded = g.succeeded + excluded.succeeded, failed = g.failed + excluded.failed,
			canceled = g.canceled + excluded.canceled, done_wp = g.done_wp + excluded.done_wp,
			dirty_at = excluded.dirty_at
		RETURNING 1
	), own AS (
		INSERT INTO progressd_project_owners AS p
			(project, owner, queued, running, succeeded, failed, canceled, last_activity_at)
		SELECT project, owner, sum(dq), sum(dr), sum(ds), sum(df), sum(dc), max(updated_ms)
		FROM d, (SELECT count(*) FROM grp) AS after_grp GROUP BY project, owner ORDER BY project, owner
		ON CONFLICT (project, owner) DO UPDATE SET ` + addCounts + `
		RETURNING 1
	), prj AS (
		INSERT INTO progressd_projects AS p (project, queued, running, succeeded, failed, canceled, last_activity_at)
		SELECT project, sum(dq), sum(dr), sum(ds), sum(df), sum(dc), max(updated_ms)
		FROM d, (SELECT count(*) FROM own) AS after_own GROUP BY project ORDER BY project
		ON CONFLICT (project) DO UPDATE SET ` + addCounts + `
		RETURNING 1
	)
	SELECT id, seq, stalls FROM d, (SELECT count(*) FROM prj) AS after_prj
	WHERE new IN ('succeeded', 'failed', 'canceled') AND old NOT IN ('succeeded', 'failed', 'canceled') OR stalls`

const addCounts = `queued = p.queued + excluded.queued, running = p.running + excluded.running,
			succeeded = p.succeeded + excluded.succeeded, failed = p.failed + excluded.failed,
			canceled = p.canceled + excluded.canceled,
			last_activity_at = greatest(p.last_activity_at, excluded.last_activity_at)`

// SetIdleStep makes Save keep a stored idle_since while the new one is
// less than step after it (store.IdleStep).
func (s *Store) SetIdleStep(step time.Duration) { s.idleStep.Store(step.Milliseconds()) }

// Save updates every job in snaps whose stored seq is lower. The batch is
// one round trip and one implicit transaction (a pgx batch ends in a
// single Sync): the row locks, in id order, then one UPDATE of all rows.
func (s *Store) Save(ctx context.Context, snaps []progress.Snapshot) error {
	if len(snaps) == 0 {
		return nil
	}
	n := len(snaps)
	ids, states, snapshots := make([]string, n), make([]string, n), make([]string, n)
	seqs, updatedMS := make([]int64, n), make([]int64, n)
	progresses := make([]float64, n)
	updated := make([]time.Time, n)
	finished := make([]*time.Time, n)
	dueAt, idleSince := make([]*int64, n), make([]*int64, n)
	stalled := make([]bool, n)
	for i, snap := range snaps {
		r, err := encode(snap)
		if err != nil {
			return fmt.Errorf("postgres: save: %w", err)
		}
		ids[i], states[i], seqs[i], updated[i], finished[i], snapshots[i] =
			r.id, r.state, r.seq, r.updatedAt, r.finishedAt, r.snapshot
		progresses[i], updatedMS[i] = r.progress, snap.UpdatedAt.UnixMilli()
		dueAt[i], idleSince[i] = r.dueAt, r.idleSince
		stalled[i] = snap.Stalled
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("postgres: save %d snapshots: %w", n, err)
	}

	args := []any{ids, states, seqs, updated, finished, snapshots, progresses, updatedMS, time.Now().UnixMilli(), dueAt, idleSince, stalled, s.idleStep.Load()}
	if fn := s.onChange.Get(); fn != nil && slices.ContainsFunc(snaps, func(s progress.Snapshot) bool { return store.MayChange(&s) }) {
		if err := s.saveRecording(ctx, fn, snaps, snapshots, args); err != nil {
			return fmt.Errorf("postgres: save %d snapshots: %w", n, err)
		}
		return nil
	}
	b := &pgx.Batch{}
	b.Queue(lockRows, ids)
	b.Queue(saveRows, args...)
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

// saveRecording is Save in an explicit transaction that hands the changes
// saveRows reports to fn before it commits. It costs two round trips more
// than the implicit one (BEGIN, COMMIT), paid only by batches holding a
// snapshot that may change (store.MayChange) while fn is set.
func (s *Store) saveRecording(ctx context.Context, fn store.OnChange[pgx.Tx], snaps []progress.Snapshot, encoded []string, args []any) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	type key struct {
		id     string
		seq    int64
		stalls bool
	}
	var written []key
	b := &pgx.Batch{}
	b.Queue(lockRows, args[0])
	b.Queue(saveRows, args...).Query(func(rows pgx.Rows) error {
		var k key
		_, err := pgx.ForEachRow(rows, []any{&k.id, &k.seq, &k.stalls}, func() error {
			written = append(written, k)
			return nil
		})
		return err
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	if len(written) > 0 {
		changes := make([]store.Change, 0, len(written))
		for _, k := range written {
			for i := range snaps {
				if snaps[i].JobID == k.id && int64(snaps[i].Seq) == k.seq {
					kind := store.Ended
					if k.stalls {
						kind = store.Stalled
					}
					changes = append(changes, store.Change{Kind: kind, Snapshot: &snaps[i], JSON: encoded[i]})
					break
				}
			}
		}
		if err := fn(ctx, tx, changes); err != nil {
			return fmt.Errorf("record %d changes: %w", len(changes), err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
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
