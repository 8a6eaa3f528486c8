// Package sqlite is the default durable job store: one SQLite file in the
// data directory, through modernc.org/sqlite (pure Go, no cgo), so the single
// binary runs anywhere without a C toolchain.
//
// The database is opened in WAL mode with synchronous=NORMAL: readers never
// block the writer, and a commit costs no fsync of the main file (a power
// loss can lose the last commits, never corrupt the file). The Store holds
// ONE connection. SQLite allows one writer at a time anyway, a single
// connection makes SQLITE_BUSY impossible inside this process, and the
// write-behind in front of the store keeps writes few and batched, so reads
// queueing behind a write cost microseconds. Other processes (River, a
// second progressd on the same file) are covered by busy_timeout and by
// BEGIN IMMEDIATE, which takes the write lock up front instead of failing on
// a lock upgrade halfway through a transaction.
//
// All methods are safe for concurrent use.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/progressd/progressd/internal/store"
)

// busyTimeoutMS is how long a statement waits for another process's lock
// before failing with SQLITE_BUSY.
const busyTimeoutMS = 5000

// Store is the SQLite implementation of store.Store.
type Store struct {
	db        *sql.DB
	path      string
	stmts     map[string]*sql.Stmt // tallySQL's and Save's statements, prepared once
	onChange  store.ChangeHook[*sql.Tx]
	idleStep  atomic.Int64 // ms, SetIdleStep
	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open opens (creating it and its directory if needed) the SQLite database
// at path and brings its schema up to date.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path; pass a file path such as ./progressd-data/progressd.db")
	}
	if strings.Contains(path, "?") {
		// The driver reads everything after the first '?' as its options.
		return nil, fmt.Errorf("sqlite: database path %q contains '?'; choose a path without it", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: create the directory of %s: %w (check the data directory is writable)", path, err)
	}
	dsn := path + "?_busy_timeout=" + fmt.Sprint(busyTimeoutMS) +
		"&_journal_mode=WAL&_synchronous=NORMAL&_foreign_keys=1&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)

	s := &Store{db: db, path: path}
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := s.prepareStatements(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// SetOnChange makes Save call fn with the changes (store.Change) each of
// its transactions makes, inside it; nil stops it.
func (s *Store) SetOnChange(fn store.OnChange[*sql.Tx]) { s.onChange.Set(fn) }

// DB is the store's one connection to its file, for River's tables in
// the same file (package webhook), whose rows must be written in the
// store's transactions. The store closes it.
func (s *Store) DB() *sql.DB { return s.db }

// Path returns the file the store was opened on.
func (s *Store) Path() string { return s.path }

// Ping reads the jobs table, which proves the file is open and readable;
// sql.DB.Ping alone would succeed on a connection whose file was deleted.
func (s *Store) Ping(ctx context.Context) error {
	var n int
	err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM (SELECT 1 FROM jobs LIMIT 1)").Scan(&n)
	if err != nil {
		return fmt.Errorf("sqlite: ping %s: %w", s.path, err)
	}
	return nil
}

// Close closes the database. Calling it again returns nil.
func (s *Store) Close() error {
	first := false
	s.closeOnce.Do(func() {
		first = true
		for _, st := range s.stmts {
			_ = st.Close()
		}
		s.closeErr = s.db.Close()
	})
	if !first || s.closeErr == nil {
		return nil
	}
	return fmt.Errorf("sqlite: close %s: %w", s.path, s.closeErr)
}

// migrations are the schema changes in order; migration i brings the
// database from user_version i to i+1. Append only: never edit one that has
// shipped, a database that already ran it will not run it again.
var migrations = []string{
	// 1: the jobs table. The snapshot column is the JSON wire form and the
	// source of truth; the other columns copy what List filters and sorts on.
	// Times are Unix milliseconds. Ids are time-ordered (UUIDv7), so
	// "ORDER BY id DESC" is newest first and "id < cursor" is the next page;
	// each index ends in id so a filtered page is one index range scan.
	`CREATE TABLE jobs (
		id          TEXT PRIMARY KEY,
		project     TEXT NOT NULL,
		owner       TEXT NOT NULL,
		state       TEXT NOT NULL,
		seq         INTEGER NOT NULL,
		created_at  INTEGER NOT NULL,
		updated_at  INTEGER NOT NULL,
		finished_at INTEGER,
		snapshot    TEXT NOT NULL
	);
	CREATE INDEX jobs_project_id ON jobs (project, id);
	CREATE INDEX jobs_owner_id ON jobs (owner, id);
	CREATE INDEX jobs_state_id ON jobs (state, id);`,

	// 2: parents and children, tags, the project list (SPEC part two).
	// parent_id, weight and progress copy what the children's aggregate
	// reads; job_children holds each parent's exact totals, changed in
	// the transaction of every child's create and state change, with
	// dirty_at set until the change is known applied to the parent's
	// snapshot; projects and project_owners count jobs by state with the
	// last activity, for GET /api/v1/projects without scanning jobs.
	`ALTER TABLE jobs ADD COLUMN parent_id TEXT;
	ALTER TABLE jobs ADD COLUMN weight REAL NOT NULL DEFAULT 0;
	ALTER TABLE jobs ADD COLUMN progress REAL NOT NULL DEFAULT 0;
	UPDATE jobs SET progress = coalesce(json_extract(snapshot, '$.progress'), 0);
	CREATE INDEX jobs_parent_id ON jobs (parent_id, id) WHERE parent_id IS NOT NULL;
	CREATE TABLE job_tags (
		tag    TEXT NOT NULL,
		job_id TEXT NOT NULL,
		owner  TEXT NOT NULL,
		PRIMARY KEY (tag, job_id)
	) WITHOUT ROWID;
	CREATE INDEX job_tags_owner ON job_tags (tag, owner, job_id);
	CREATE TABLE job_children (
		parent_id  TEXT PRIMARY KEY,
		version    INTEGER NOT NULL,
		total      INTEGER NOT NULL,
		queued     INTEGER NOT NULL,
		running    INTEGER NOT NULL,
		succeeded  INTEGER NOT NULL,
		failed     INTEGER NOT NULL,
		canceled   INTEGER NOT NULL,
		weight_sum REAL NOT NULL,
		done_wp    REAL NOT NULL,
		dirty_at   INTEGER
	);
	CREATE INDEX job_children_dirty ON job_children (dirty_at) WHERE dirty_at IS NOT NULL;
	CREATE TABLE project_owners (
		project          TEXT NOT NULL,
		owner            TEXT NOT NULL,
		queued           INTEGER NOT NULL,
		running          INTEGER NOT NULL,
		succeeded        INTEGER NOT NULL,
		failed           INTEGER NOT NULL,
		canceled         INTEGER NOT NULL,
		last_activity_at INTEGER NOT NULL,
		PRIMARY KEY (project, owner)
	);
	CREATE INDEX project_owners_activity ON project_owners (owner, last_activity_at, project);
	CREATE TABLE projects (
		project          TEXT PRIMARY KEY,
		queued           INTEGER NOT NULL,
		running          INTEGER NOT NULL,
		succeeded        INTEGER NOT NULL,
		failed           INTEGER NOT NULL,
		canceled         INTEGER NOT NULL,
		last_activity_at INTEGER NOT NULL
	);
	CREATE INDEX projects_activity ON projects (last_activity_at, project);
	INSERT INTO project_owners
		SELECT project, owner, sum(state = 'queued'), sum(state = 'running'), sum(state = 'succeeded'),
			sum(state = 'failed'), sum(state = 'canceled'), max(updated_at)
		FROM jobs GROUP BY project, owner;
	INSERT INTO projects
		SELECT project, sum(queued), sum(running), sum(succeeded), sum(failed), sum(canceled), max(last_activity_at)
		FROM project_owners GROUP BY project;`,
	// 3: idempotency keys of creates (store/keys.go): one row per owner
	// and key, holding the first answer; created_at in Unix milliseconds.
	`CREATE TABLE idempotency_keys (
		owner      TEXT NOT NULL,
		idem_key   TEXT NOT NULL,
		body_hash  TEXT NOT NULL,
		job_id     TEXT NOT NULL,
		response   TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		PRIMARY KEY (owner, idem_key)
	) WITHOUT ROWID;
	CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);`,

	// 4: log lines (SPEC part two, "Log lines"): each job's most recent
	// lines, written behind from the log store's tier, trimmed to
	// --log-lines per job, deleted with their job. t is Unix milliseconds.
	`CREATE TABLE job_logs (
		job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
		n      INTEGER NOT NULL,
		t      INTEGER NOT NULL,
		stream TEXT NOT NULL,
		stage  TEXT NOT NULL,
		text   TEXT NOT NULL,
		PRIMARY KEY (job_id, n)
	) WITHOUT ROWID;`,

	// 5: retention (store/purge.go) picks finished jobs oldest first.
	`CREATE INDEX jobs_finished_at ON jobs (finished_at) WHERE finished_at IS NOT NULL;`,

	// 6: stalls and abandoned jobs (store/lapse.go): the earliest
	// deadline of a job's own limits, and since when a job the server's
	// --abandon-after applies to has been idle (Unix ms), each indexed
	// where set. Unfinished jobs that workers report on start idle from
	// their last change.
	`ALTER TABLE jobs ADD COLUMN due_at INTEGER;
	ALTER TABLE jobs ADD COLUMN idle_since INTEGER;
	UPDATE jobs SET idle_since = updated_at
		WHERE finished_at IS NULL AND coalesce(json_extract(snapshot, '$.pipeline'), '') = '';
	CREATE INDEX jobs_due_at ON jobs (due_at) WHERE due_at IS NOT NULL;
	CREATE INDEX jobs_idle_since ON jobs (idle_since) WHERE idle_since IS NOT NULL;`,
}

// migrate applies the migrations the file has not run yet, in one
// transaction, so two processes opening a new file at once cannot both
// create the schema.
func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w (check the file is a SQLite database and not locked by another program)", s.path, err)
	}
	defer func() { _ = tx.Rollback() }()

	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("sqlite: read the schema version of %s: %w", s.path, err)
	}
	if version > len(migrations) {
		return fmt.Errorf("sqlite: %s has schema version %d but this progressd knows only up to %d; run a newer progressd or use another --data-dir",
			s.path, version, len(migrations))
	}
	if version == len(migrations) {
		return nil
	}
	for i := version; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("sqlite: migrate %s to schema version %d: %w", s.path, i+1, err)
		}
	}
	// PRAGMA takes no bound parameters; the value is our own constant.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
		return fmt.Errorf("sqlite: set the schema version of %s: %w", s.path, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: migrate %s: %w", s.path, err)
	}
	return nil
}
