package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
)

// queries are the reads of package store's shared SQL, in this database's spelling.
var queries = store.SQL{Table: "jobs", Tags: "job_tags", Placeholder: store.QuestionMark}

// row is a snapshot ready to be written: its columns, encoded outside any
// transaction so the write lock is held only for the statements.
type row struct {
	id, project, owner, state string
	seq                       int64
	createdAt, updatedAt      int64
	finishedAt                sql.NullInt64
	snapshot                  string
	parentID                  sql.NullString
	weight, progress          float64
	dueAt, idleSince          sql.NullInt64 // store.LapseColumns
}

func encode(s progress.Snapshot) (row, error) {
	if s.JobID == "" {
		return row{}, errors.New("snapshot has no job_id")
	}
	if s.Seq > math.MaxInt64 {
		return row{}, fmt.Errorf("job %s: seq %d does not fit in a SQLite integer", s.JobID, s.Seq)
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
		createdAt: s.CreatedAt.UnixMilli(),
		updatedAt: s.UpdatedAt.UnixMilli(),
		snapshot:  string(b),
		parentID:  sql.NullString{String: s.ParentID, Valid: s.ParentID != ""},
		weight:    s.Weight,
		progress:  s.Progress,
	}
	if s.FinishedAt != nil {
		r.finishedAt = sql.NullInt64{Int64: s.FinishedAt.UnixMilli(), Valid: true}
	}
	due, idle := store.LapseColumns(&s)
	r.dueAt, r.idleSince = nullInt(due), nullInt(idle)
	return r, nil
}

func nullInt(v *int64) sql.NullInt64 {
	if v == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: *v, Valid: true}
}

func decode(id, text string) (progress.Snapshot, error) {
	s, err := store.DecodeSnapshot(id, text)
	if err != nil {
		return progress.Snapshot{}, fmt.Errorf("sqlite: %w", err)
	}
	return s, nil
}

// Create inserts a new job, its tags and its share of the counters in one
// transaction; ErrExists if the id is taken, ErrParentNotFound or
// ErrParentFinished for a child whose parent is gone or terminal.
func (s *Store) Create(ctx context.Context, snap progress.Snapshot) error {
	_, err := s.create(ctx, snap, nil, time.Time{})
	return err
}

// create is Create, recording key first in the same transaction if one is
// given (CreateKeyed): a key that is taken ends it with ErrKeyTaken.
func (s *Store) create(ctx context.Context, snap progress.Snapshot, key *store.IdempotencyKey, expiredBefore time.Time) (store.IdempotencyKey, error) {
	r, err := encode(snap)
	if err != nil {
		return store.IdempotencyKey{}, fmt.Errorf("sqlite: create: %w", err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return store.IdempotencyKey{}, fmt.Errorf("sqlite: create job %s: begin: %w", r.id, err)
	}
	defer func() { _ = tx.Rollback() }()
	if key != nil {
		if held, err := recordKey(ctx, tx, *key, r, expiredBefore); err != nil {
			return held, err
		}
	}
	if snap.ParentID != "" {
		var state string
		err := tx.QueryRowContext(ctx, `SELECT state FROM jobs WHERE id = ?`, snap.ParentID).Scan(&state)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return store.IdempotencyKey{}, fmt.Errorf("sqlite: create job %s under %s: %w", r.id, snap.ParentID, store.ErrParentNotFound)
		case err != nil:
			return store.IdempotencyKey{}, fmt.Errorf("sqlite: create job %s: read parent: %w", r.id, err)
		case progress.State(state).Terminal():
			return store.IdempotencyKey{}, fmt.Errorf("sqlite: create job %s under %s: %w", r.id, snap.ParentID, store.ErrParentFinished)
		}
	}
	res, err := tx.ExecContext(ctx, `
		INSERT INTO jobs (id, project, owner, state, seq, created_at, updated_at, finished_at, snapshot, parent_id, weight, progress, due_at, idle_since)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`,
		r.id, r.project, r.owner, r.state, r.seq, r.createdAt, r.updatedAt, r.finishedAt, r.snapshot,
		r.parentID, r.weight, r.progress, r.dueAt, r.idleSince)
	if err != nil {
		return store.IdempotencyKey{}, fmt.Errorf("sqlite: create job %s: %w", r.id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return store.IdempotencyKey{}, fmt.Errorf("sqlite: create job %s: %w", r.id, err)
	}
	if n == 0 {
		return store.IdempotencyKey{}, fmt.Errorf("sqlite: create job %s: %w", r.id, store.ErrExists)
	}
	for _, tag := range snap.Tags {
		if _, err := tx.ExecContext(ctx, `INSERT INTO job_tags (tag, job_id, owner) VALUES (?, ?, ?)`, tag, r.id, r.owner); err != nil {
			return store.IdempotencyKey{}, fmt.Errorf("sqlite: create job %s: tag %q: %w", r.id, tag, err)
		}
	}
	t := store.NewTally()
	t.Created(&snap)
	if err := s.applyTally(ctx, tx, t); err != nil {
		return store.IdempotencyKey{}, fmt.Errorf("sqlite: create job %s: %w", r.id, err)
	}
	if err := tx.Commit(); err != nil {
		return store.IdempotencyKey{}, fmt.Errorf("sqlite: create job %s: commit: %w", r.id, err)
	}
	if key != nil {
		return *key, nil
	}
	return store.IdempotencyKey{}, nil
}

// Save's statements, prepared once (prepareStatements): parsing them was
// a tenth of a durable save. saveSameState leaves idle_since as stored
// when the new one (?9) is NULL as it is, or at most a step (?10, ms)
// after it (store.IdleStep): it matches nothing otherwise, and
// saveSameStateIdle, which sets it, is tried next.
const (
	saveSameState = `
		UPDATE jobs SET seq = ?1, updated_at = ?2, finished_at = ?3, snapshot = ?4, progress = ?5, due_at = ?6
		WHERE id = ?7 AND seq < ?1 AND state = ?8
		AND CASE WHEN ?9 IS NULL THEN idle_since IS NULL ELSE ?9 - idle_since BETWEEN 0 AND ?10 - 1 END`
	saveSameStateIdle = `
		UPDATE jobs SET seq = ?, updated_at = ?, finished_at = ?, snapshot = ?, progress = ?, due_at = ?, idle_since = ?
		WHERE id = ? AND seq < ? AND state = ?`
	saveReadState = `SELECT state, coalesce(parent_id, ''), weight,
		CASE WHEN ? THEN coalesce(json_extract(snapshot, '$.stalled'), 0) ELSE 0 END
		FROM jobs WHERE id = ? AND seq < ?`
	saveNewState = `
		UPDATE jobs SET state = ?, seq = ?, updated_at = ?, finished_at = ?, snapshot = ?, progress = ?, due_at = ?, idle_since = ?
		WHERE id = ? AND seq < ?`
)

// SetIdleStep makes Save keep a stored idle_since while the new one is
// less than step after it (store.IdleStep).
func (s *Store) SetIdleStep(step time.Duration) { s.idleStep.Store(step.Milliseconds()) }

// Save updates every job in snaps whose stored seq is lower, in one
// transaction: one commit (one WAL append) however many jobs the batch holds.
// The seq condition is in the UPDATE itself, so a stale snapshot is skipped
// by the database even when two writers race.
func (s *Store) Save(ctx context.Context, snaps []progress.Snapshot) error {
	if len(snaps) == 0 {
		return nil
	}
	rows := make([]row, len(snaps))
	for i, snap := range snaps {
		r, err := encode(snap)
		if err != nil {
			return fmt.Errorf("sqlite: save: %w", err)
		}
		rows[i] = r
	}

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: save %d snapshots: begin: %w", len(rows), err)
	}
	defer func() { _ = tx.Rollback() }()
	// Most saves leave state as it is, and SQLite rewrites an index entry
	// for every indexed column an UPDATE sets, changed or not: setting
	// state costs an entry in jobs_state_id each time (30–45% of a batch,
	// BenchmarkSave). So a row is first updated without state, on the
	// condition that its state is unchanged; only when that matches nothing
	// (the state changed, the job is gone, or the row is newer) is the
	// full update tried. idle_since, under a partial index too, is left
	// out of the first try likewise (SetIdleStep): set by the second only
	// when it moved by a step.
	//
	// A state change also moves the durable counters (store.Tally), so the
	// full path reads the stored state first; the write lock is held for
	// the whole transaction, so nothing changes the row in between. So
	// does a stalled snapshot while changes are recorded (store.Change:
	// whether the stored one was stalled is read there too).
	same := tx.StmtContext(ctx, s.stmts[saveSameState])
	sameIdle := tx.StmtContext(ctx, s.stmts[saveSameStateIdle])
	step := s.idleStep.Load()
	old := tx.StmtContext(ctx, s.stmts[saveReadState])
	full := tx.StmtContext(ctx, s.stmts[saveNewState])
	t := store.NewTally()
	var changes []store.Change
	onChange := s.onChange.Get()
	for i, r := range rows {
		stall := onChange != nil && snaps[i].Stalled
		if !stall {
			done, err := execOne(ctx, same, r.seq, r.updatedAt, r.finishedAt, r.snapshot, r.progress, r.dueAt, r.id, r.state, r.idleSince, step)
			if err == nil && !done {
				done, err = execOne(ctx, sameIdle, r.seq, r.updatedAt, r.finishedAt, r.snapshot, r.progress, r.dueAt, r.idleSince, r.id, r.seq, r.state)
			}
			if err != nil {
				return fmt.Errorf("sqlite: save job %s: %w", r.id, err)
			}
			if done {
				t.Touched(&snaps[i])
				continue
			}
		}
		var from, parent string
		var weight float64
		var wasStalled bool
		err = old.QueryRowContext(ctx, stall, r.id, r.seq).Scan(&from, &parent, &weight, &wasStalled)
		if errors.Is(err, sql.ErrNoRows) {
			continue // unknown job, or the stored snapshot is as new
		}
		if err != nil {
			return fmt.Errorf("sqlite: save job %s: %w", r.id, err)
		}
		if _, err := full.ExecContext(ctx, r.state, r.seq, r.updatedAt, r.finishedAt, r.snapshot, r.progress, r.dueAt, r.idleSince, r.id, r.seq); err != nil {
			return fmt.Errorf("sqlite: save job %s: %w", r.id, err)
		}
		t.Moved(parent, weight, progress.State(from), &snaps[i])
		switch {
		case !progress.State(from).Terminal() && snaps[i].State.Terminal():
			changes = append(changes, store.Change{Kind: store.Ended, Snapshot: &snaps[i], JSON: r.snapshot})
		case stall && !wasStalled:
			changes = append(changes, store.Change{Kind: store.Stalled, Snapshot: &snaps[i], JSON: r.snapshot})
		}
	}
	if err := s.applyTally(ctx, tx, t); err != nil {
		return fmt.Errorf("sqlite: save %d snapshots: %w", len(rows), err)
	}
	if onChange != nil && len(changes) > 0 {
		if err := onChange(ctx, tx, changes); err != nil {
			return fmt.Errorf("sqlite: save %d snapshots: record %d changes: %w", len(rows), len(changes), err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: save %d snapshots: commit: %w", len(rows), err)
	}
	return nil
}

// execOne runs an UPDATE of one row and reports whether it changed it.
func execOne(ctx context.Context, stmt *sql.Stmt, args ...any) (bool, error) {
	res, err := stmt.ExecContext(ctx, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return err == nil && n == 1, nil
}

// Get returns the stored snapshot of job id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (progress.Snapshot, error) {
	var text string
	err := s.db.QueryRowContext(ctx, queries.Get(), id).Scan(&text)
	if errors.Is(err, sql.ErrNoRows) {
		return progress.Snapshot{}, fmt.Errorf("sqlite: job %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return progress.Snapshot{}, fmt.Errorf("sqlite: get job %s: %w", id, err)
	}
	return decode(id, text)
}

// List returns one page of jobs, newest first. It reads one row more than
// the page holds to learn whether a next page exists, so the last page has
// no cursor even when it is full.
func (s *Store) List(ctx context.Context, q progress.Query) ([]progress.Snapshot, string, error) {
	query, args := queries.List(q)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list jobs: %w", err)
	}
	defer rows.Close()

	jobs, next, err := store.ReadPage(rows, q.PageSize())
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list jobs: %w", err)
	}
	return jobs, next, nil
}
