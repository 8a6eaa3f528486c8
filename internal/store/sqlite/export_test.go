package sqlite

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/progress"
)

// Test helpers that reach inside the Store.

func Pragma(t *testing.T, s *Store, name string) string {
	t.Helper()
	var v string
	if err := s.db.QueryRowContext(t.Context(), "PRAGMA "+name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return strings.ToLower(v)
}

func Exec(t testing.TB, s *Store, query string) {
	t.Helper()
	if _, err := s.db.ExecContext(t.Context(), query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// ExplainList returns the query plan of List(q), one step a line.
func ExplainList(t *testing.T, s *Store, q progress.Query) string {
	t.Helper()
	query, args := queries.List(q)
	return explain(t, s, query, args...)
}

// ExplainLapsing returns the query plans of Lapsing's two reads.
func ExplainLapsing(t *testing.T, s *Store) (due, idle string) {
	t.Helper()
	return explain(t, s, lapseSQL.Due(), 1, 500), explain(t, s, lapseSQL.Idle(), 1, 500)
}

func explain(t *testing.T, s *Store, query string, args ...any) string {
	t.Helper()
	rows, err := s.db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatalf("EXPLAIN: %v", err)
	}
	defer rows.Close()
	var plan strings.Builder
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(detail + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan.String()
}

// SchemaVersion is the version the migrations bring a database to.
func SchemaVersion() int { return len(migrations) }

// SeedJobs fills s with n jobs in projects projects owned by owners users
// (states in turn), and rebuilds the project counters from them with the
// statements of migration 2: the benchmark's 100,000 jobs in seconds, not
// the minutes 100,000 creates take.
func SeedJobs(tb testing.TB, s *Store, n, projects, owners int) {
	tb.Helper()
	for _, q := range append([]string{
		fmt.Sprintf(`WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i + 1 < %d)
		INSERT INTO jobs (id, project, owner, state, seq, created_at, updated_at, snapshot)
		SELECT printf('00000000-0000-7000-8000-%%012d', i), 'p' || (i %% %d), 'u' || (i %% %d),
			CASE i %% 5 WHEN 0 THEN 'queued' WHEN 1 THEN 'running' WHEN 2 THEN 'succeeded' WHEN 3 THEN 'failed' ELSE 'canceled' END,
			1, 1764000000000 + i, 1764000000000 + i, '{}' FROM c`, n, projects, owners),
	}, rebuildCounters...) {
		if _, err := s.db.ExecContext(context.Background(), q); err != nil {
			tb.Fatalf("seed: %v", err)
		}
	}
}

// SeedFinished fills s with n jobs of project (owner alice) that
// succeeded, one millisecond apart, the newest an hour ago, every tenth
// with ten log lines, and rebuilds the project counters: the retention
// benchmark's million jobs in one statement, not the hours a million
// creates would take.
func SeedFinished(tb testing.TB, s *Store, n int, project string) {
	tb.Helper()
	at := time.Now().Add(-time.Hour).UnixMilli() - int64(n)
	for _, q := range append([]string{
		fmt.Sprintf(`WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i + 1 < %d)
		INSERT INTO jobs (id, project, owner, state, seq, created_at, updated_at, finished_at, snapshot, progress)
		SELECT printf('00000000-0000-7000-8000-%%012d', i), '%[2]s', 'alice', 'succeeded', 3, %[3]d + i, %[3]d + i, %[3]d + i,
			json_object('job_id', printf('00000000-0000-7000-8000-%%012d', i), 'project', '%[2]s', 'owner', 'alice',
				'state', 'succeeded', 'progress', 1, 'seq', 3, 'message', hex(zeroblob(100))), 1
		FROM c`, n, project, at),
		fmt.Sprintf(`WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < 10)
		INSERT INTO job_logs (job_id, n, t, stream, stage, text)
		SELECT j.id, k.n, j.finished_at, 'stdout', 'work', 'line ' || k.n || ' of a job, as long as an ordinary log line: ' || j.id
		FROM jobs j, k WHERE j.project = '%s' AND j.created_at %% 10 = 0`, project),
	}, rebuildCounters...) {
		if _, err := s.db.ExecContext(context.Background(), q); err != nil {
			tb.Fatalf("seed: %v", err)
		}
	}
}

// rebuildCounters recounts the project counters from the jobs (migration
// 2's statements), after a seed that inserted jobs by SQL.
var rebuildCounters = []string{
	`DELETE FROM project_owners`, `DELETE FROM projects`,
	`INSERT INTO project_owners
		SELECT project, owner, sum(state = 'queued'), sum(state = 'running'), sum(state = 'succeeded'),
			sum(state = 'failed'), sum(state = 'canceled'), max(updated_at)
		FROM jobs GROUP BY project, owner`,
	`INSERT INTO projects
		SELECT project, sum(queued), sum(running), sum(succeeded), sum(failed), sum(canceled), max(last_activity_at)
		FROM project_owners GROUP BY project`,
	`ANALYZE`,
}
