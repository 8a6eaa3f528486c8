package testsvc

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresURL returns the URL of the test database (EnvPostgres, or
// DefaultPostgres), or ends t if it does not answer.
func PostgresURL(t testing.TB) string {
	t.Helper()
	raw := serviceURL(t, EnvPostgres, DefaultPostgres)
	err := probeOnce(raw, func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, raw)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		return conn.Ping(ctx)
	})
	if err != nil {
		Unavailable(t, "PostgreSQL at "+raw, err)
	}
	return raw
}

// PostgresSchema creates an empty schema for t in the test database and
// returns a URL whose connections use it (search_path). The schema and
// everything in it are dropped when t ends.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	raw := PostgresURL(t)
	schema := UniqueName("pdt_" + sanitize(shortName(t.Name())) + "_")
	pgExec(t, raw, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := execCtx(ctx, raw, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop test schema %s: %v", schema, err)
		}
	})
	return withQuery(raw, "search_path", schema)
}

// shortName keeps the last 20 bytes of a test name. A schema name is then
// at most 4+20+1+12 = 37 bytes: PostgreSQL identifiers are at most 63, and
// River names its notification channels "<schema>.river_leadership"
// (+17), which must fit too — with a longer schema River's leader cannot
// resign and every River test waited ~7 s on Stop.
func shortName(name string) string {
	if len(name) > 20 {
		return name[len(name)-20:]
	}
	return name
}

func pgExec(t testing.TB, raw, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := execCtx(ctx, raw, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func execCtx(ctx context.Context, raw, sql string) error {
	conn, err := pgx.Connect(ctx, raw)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}
