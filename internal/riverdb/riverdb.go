// Package riverdb opens River's databases the way every part of progressd
// that queues work with River (the orchestrator's pipelines, the webhook
// deliveries) needs them: a SQLite file with one connection and the
// settings that keep two connections to one file from failing each other,
// or a PostgreSQL database shared by every node, each brought up to date
// with River's migrations exactly once however many parts and nodes start
// together.
//
// Its functions are safe for concurrent use.
package riverdb

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// OpenSQLite opens the SQLite file at path for River, with one connection
// (SQLite has one writer; one connection makes SQLITE_BUSY impossible in
// this handle, and busy_timeout covers other handles and processes on the
// same file), and runs River's migrations on it.
func OpenSQLite(ctx context.Context, path string, log *slog.Logger) (*sql.DB, *riversqlite.Driver, error) {
	if strings.Contains(path, "?") {
		return nil, nil, fmt.Errorf("path %q contains '?'; choose a data directory without it", path)
	}
	db, err := sql.Open("sqlite", path+"?_busy_timeout=5000&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate")
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	driver, err := MigrateSQLite(ctx, db, log)
	if err != nil {
		_ = db.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return db, driver, nil
}

// MigrateSQLite runs River's migrations on db, a SQLite database opened
// by its owner, and returns River's driver on it.
func MigrateSQLite(ctx context.Context, db *sql.DB, log *slog.Logger) (*riversqlite.Driver, error) {
	driver := riversqlite.New(db)
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: QuietLog(log)})
	if err == nil {
		_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("migrate River's tables: %w", err)
	}
	return driver, nil
}

// MigratePostgres brings River's tables in pool's database (the first
// schema of its search_path) up to date. River's migrations need a
// transaction each (one adds an enum value the next uses), so nodes and
// parts starting together are kept apart by a session advisory lock on a
// connection of its own; then, if not nil, runs under the same lock for a
// caller's own tables.
func MigratePostgres(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, then func(context.Context, *pgxpool.Conn) error) error {
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: QuietLog(log)})
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	const key = `hashtextextended('progressd river migrate ' || coalesce(current_schema(), ''), 0)`
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(`+key+`)`); err != nil {
		return err
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(`+key+`)`); err != nil {
			conn.Conn().Close(context.Background()) // ends the session, and the lock
		}
	}()
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return err
	}
	if then != nil {
		return then(ctx, conn)
	}
	return nil
}

// QuietLog is the logger to give River: its routine info lines are debug
// here, since they describe River's own machinery (leader election,
// producers), not our jobs, whose life the callers log themselves.
func QuietLog(log *slog.Logger) *slog.Logger {
	return slog.New(levelShift{log.With("component", "river").Handler()})
}

// levelShift turns info records into debug records.
type levelShift struct{ slog.Handler }

func (h levelShift) Enabled(ctx context.Context, l slog.Level) bool {
	if l == slog.LevelInfo {
		l = slog.LevelDebug
	}
	return h.Handler.Enabled(ctx, l)
}

func (h levelShift) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelInfo {
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

func (h levelShift) WithAttrs(a []slog.Attr) slog.Handler { return levelShift{h.Handler.WithAttrs(a)} }
func (h levelShift) WithGroup(n string) slog.Handler      { return levelShift{h.Handler.WithGroup(n)} }
