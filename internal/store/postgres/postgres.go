// Package postgres is the durable job store for several nodes: every node
// points at the same PostgreSQL database (--db postgres://…), through pgx's
// connection pool.
//
// The schema is brought up to date when a Store opens, under an advisory
// lock, so nodes starting together migrate once. Its tables are named
// progressd_* and live in the first schema of the connection's search_path
// (add ?search_path=NAME to the URL to keep progressd in a schema of its
// own), so the database can be shared with River's river_* tables and with
// other applications.
//
// Save writes a batch in one round trip and one implicit transaction: it
// locks the rows in id order first, so batches of the write-behinds of
// several nodes can never deadlock each other, then applies every snapshot
// whose seq is higher than the stored one in a single UPDATE … FROM unnest.
//
// Behind a pooler in transaction mode (PgBouncer), add
// default_query_exec_mode=exec to the URL: the default caches prepared
// statements per connection.
//
// All methods are safe for concurrent use.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/progressd/progressd/internal/store"
)

// Store is the PostgreSQL implementation of store.Store.
type Store struct {
	pool      *pgxpool.Pool
	where     string // user@host:port/database, for messages: never the password
	closeOnce sync.Once
	onChange  store.ChangeHook[pgx.Tx]
	idleStep  atomic.Int64 // ms, SetIdleStep
}

// SetOnChange makes Save call fn with the changes (store.Change) each of
// its transactions makes, inside it; nil stops it.
func (s *Store) SetOnChange(fn store.OnChange[pgx.Tx]) { s.onChange.Set(fn) }

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (postgres://user:pass@host:5432/db)
// and brings its schema up to date. The pool takes the usual pgx settings
// from the URL (pool_max_conns, sslmode, search_path, …).
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message quotes the URL with its password masked.
		return nil, fmt.Errorf("postgres: --db is not a valid PostgreSQL URL: %w (use postgres://user:password@host:5432/database)", err)
	}
	where := fmt.Sprintf("%s@%s:%d/%s", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open %s: %w", where, err)
	}
	s := &Store{pool: pool, where: where}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Ping reads the jobs table, which proves the database answers and the
// schema is there; a bare connection ping would pass against a database
// whose tables were dropped.
func (s *Store) Ping(ctx context.Context) error {
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM progressd_jobs)`).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: ping %s: %w", s.where, err)
	}
	return nil
}

// Close closes every connection of the pool, waiting for the ones in use
// to be released. Calling it again does nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(s.pool.Close)
	return nil
}

// migrations are the schema changes in order; migration i brings the
// database from version i to i+1, recorded as a row of
// progressd_schema_migrations. Append only: never edit one that has
// shipped, a database that already ran it will not run it again.
var migrations = []string{
	// 1: the jobs table. The snapshot column is the JSON wire form and the
	// source of truth; the other columns copy what List filters and sorts
	// on. It is text, not jsonb: jsonb would parse every write, reorder the
	// keys, and reject a message holding \u0000, which the contract allows.
	// Ids are time-ordered (UUIDv7) and compared bytewise (COLLATE "C",
	// whatever the database's locale), so "ORDER BY id DESC" is newest
	// first and "id < cursor" is the next page, exactly as on SQLite; each
	// index ends in id so a filtered page is one index range scan.
	`CREATE TABLE progressd_jobs (
		id          text COLLATE "C" PRIMARY KEY,
		project     text NOT NULL,
		owner       text NOT NULL,
		state       text NOT NULL,
		seq         bigint NOT NULL,
		created_at  timestamptz NOT NULL,
		updated_at  timestamptz NOT NULL,
		finished_at timestamptz,
		snapshot    text NOT NULL
	);
	CREATE INDEX progressd_jobs_project_id ON progressd_jobs (project, id);
	CREATE INDEX progressd_jobs_owner_id ON progressd_jobs (owner, id);
	CREATE INDEX progressd_jobs_state_id ON progressd_jobs (state, id);`,

	// 2: parents and children, tags, the project list (SPEC part two), as
	// in the SQLite store's migration 2: parent_id, weight and progress
	// copy what the children's aggregate reads; progressd_job_children
	// holds each parent's exact totals, changed in the transaction of
	// every child's create and state change; progressd_projects and
	// progressd_project_owners count jobs by state with the last activity.
	// Activity and dirty times are Unix milliseconds, so both stores page
	// the project list with the same cursor.
	`ALTER TABLE progressd_jobs ADD COLUMN parent_id text COLLATE "C";
	ALTER TABLE progressd_jobs ADD COLUMN weight double precision NOT NULL DEFAULT 0;
	ALTER TABLE progressd_jobs ADD COLUMN progress double precision NOT NULL DEFAULT 0;
	UPDATE progressd_jobs SET progress = coalesce((snapshot::json->>'progress')::double precision, 0);
	CREATE INDEX progressd_jobs_parent_id ON progressd_jobs (parent_id, id) WHERE parent_id IS NOT NULL;
	CREATE TABLE progressd_job_tags (
		tag    text COLLATE "C" NOT NULL,
		job_id text COLLATE "C" NOT NULL,
		owner  text NOT NULL,
		PRIMARY KEY (tag, job_id)
	);
	CREATE INDEX progressd_job_tags_owner ON progressd_job_tags (tag, owner, job_id);
	CREATE TABLE progressd_job_children (
		parent_id  text COLLATE "C" PRIMARY KEY,
		version    bigint NOT NULL,
		total      bigint NOT NULL,
		queued     bigint NOT NULL,
		running    bigint NOT NULL,
		succeeded  bigint NOT NULL,
		failed     bigint NOT NULL,
		canceled   bigint NOT NULL,
		weight_sum double precision NOT NULL,
		done_wp    double precision NOT NULL,
		dirty_at   bigint
	);
	CREATE INDEX progressd_job_children_dirty ON progressd_job_children (dirty_at) WHERE dirty_at IS NOT NULL;
	CREATE TABLE progressd_project_owners (
		project          text COLLATE "C" NOT NULL,
		owner            text NOT NULL,
		queued           bigint NOT NULL,
		running          bigint NOT NULL,
		succeeded        bigint NOT NULL,
		failed           bigint NOT NULL,
		canceled         bigint NOT NULL,
		last_activity_at bigint NOT NULL,
		PRIMARY KEY (project, owner)
	);
	CREATE INDEX progressd_project_owners_activity ON progressd_project_owners (owner, last_activity_at, project);
	CREATE TABLE progressd_projects (
		project          text COLLATE "C" PRIMARY KEY,
		queued           bigint NOT NULL,
		running          bigint NOT NULL,
		succeeded        bigint NOT NULL,
		failed           bigint NOT NULL,
		canceled         bigint NOT NULL,
		last_activity_at bigint NOT NULL
	);
	CREATE INDEX progressd_projects_activity ON progressd_projects (last_activity_at, project);
	INSERT INTO progressd_project_owners
		SELECT project, owner, count(*) FILTER (WHERE state = 'queued'), count(*) FILTER (WHERE state = 'running'),
			count(*) FILTER (WHERE state = 'succeeded'), count(*) FILTER (WHERE state = 'failed'),
			count(*) FILTER (WHERE state = 'canceled'), (extract(epoch FROM max(updated_at)) * 1000)::bigint
		FROM progressd_jobs GROUP BY project, owner;
	INSERT INTO progressd_projects
		SELECT project, sum(queued), sum(running), sum(succeeded), sum(failed), sum(canceled), max(last_activity_at)
		FROM progressd_project_owners GROUP BY project;`,
	// 3: idempotency keys of creates (store/keys.go): one row per owner
	// and key, holding the first answer.
	`CREATE TABLE progressd_idempotency_keys (
		owner      text NOT NULL,
		idem_key   text NOT NULL,
		body_hash  text NOT NULL,
		job_id     text COLLATE "C" NOT NULL,
		response   text NOT NULL,
		created_at timestamptz NOT NULL,
		PRIMARY KEY (owner, idem_key)
	);
	CREATE INDEX progressd_idempotency_keys_created_at ON progressd_idempotency_keys (created_at);`,

	// 4: log lines, as in the SQLite store's migration 4.
	`CREATE TABLE progressd_job_logs (
		job_id text COLLATE "C" NOT NULL REFERENCES progressd_jobs (id) ON DELETE CASCADE,
		n      bigint NOT NULL,
		t      bigint NOT NULL,
		stream text NOT NULL,
		stage  text NOT NULL,
		text   text NOT NULL,
		PRIMARY KEY (job_id, n)
	);`,

	// 5: retention (store/purge.go) picks finished jobs oldest first.
	`CREATE INDEX progressd_jobs_finished_at ON progressd_jobs (finished_at) WHERE finished_at IS NOT NULL;`,

	// 6: stalls and abandoned jobs, as in the SQLite store's migration 6
	// (store/lapse.go).
	`ALTER TABLE progressd_jobs ADD COLUMN due_at bigint;
	ALTER TABLE progressd_jobs ADD COLUMN idle_since bigint;
	UPDATE progressd_jobs SET idle_since = (extract(epoch FROM updated_at) * 1000)::bigint
		WHERE finished_at IS NULL AND coalesce(snapshot::json->>'pipeline', '') = '';
	CREATE INDEX progressd_jobs_due_at ON progressd_jobs (due_at) WHERE due_at IS NOT NULL;
	CREATE INDEX progressd_jobs_idle_since ON progressd_jobs (idle_since) WHERE idle_since IS NOT NULL;`,
}

// migrate applies the migrations the database has not run yet, in one
// transaction, holding an advisory lock on this schema so that nodes
// starting at once wait for each other instead of racing to create tables.
func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: connect to %s: %w (is PostgreSQL running there, and do --db's host, port, user, password and database name match it?)", s.where, err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()

	var schema *string
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("postgres: %s: read the current schema: %w", s.where, err)
	}
	if schema == nil {
		return fmt.Errorf("postgres: %s: no schema of the search_path exists; create it (CREATE SCHEMA …) or fix search_path in --db", s.where)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('progressd migrate ' || $1, 0))`, *schema); err != nil {
		return fmt.Errorf("postgres: %s: lock schema %s for migration: %w", s.where, *schema, err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS progressd_schema_migrations (
		version    integer PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("postgres: %s: create progressd_schema_migrations in schema %s: %w (the user needs the CREATE privilege on that schema)", s.where, *schema, err)
	}
	var version int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM progressd_schema_migrations`).Scan(&version); err != nil {
		return fmt.Errorf("postgres: %s: read the schema version: %w", s.where, err)
	}
	if version > len(migrations) {
		return fmt.Errorf("postgres: %s: schema %s has schema version %d but this progressd knows only up to %d; run a newer progressd, or point --db at another database or search_path",
			s.where, *schema, version, len(migrations))
	}
	if version == len(migrations) {
		return nil
	}
	for i := version; i < len(migrations); i++ {
		if _, err := tx.Exec(ctx, migrations[i]); err != nil {
			return fmt.Errorf("postgres: %s: migrate schema %s to version %d: %w", s.where, *schema, i+1, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO progressd_schema_migrations (version) VALUES ($1)`, i+1); err != nil {
			return fmt.Errorf("postgres: %s: record schema version %d: %w", s.where, i+1, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: %s: migrate schema %s: %w", s.where, *schema, err)
	}
	return nil
}

// isNoRows reports whether err is pgx's "no rows in result set".
func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
