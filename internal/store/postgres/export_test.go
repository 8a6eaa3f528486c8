package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// ListQuery exposes the SELECT List runs, for EXPLAIN in tests.
var ListQuery = queries.List

// SchemaVersion is the version the migrations bring a database to.
func SchemaVersion() int { return len(migrations) }

// SeedJobs is sqlite.SeedJobs for PostgreSQL.
func SeedJobs(tb testing.TB, s *Store, n, projects, owners int) {
	tb.Helper()
	for _, q := range append([]string{
		fmt.Sprintf(`INSERT INTO progressd_jobs (id, project, owner, state, seq, created_at, updated_at, snapshot)
		SELECT '00000000-0000-7000-8000-' || lpad(i::text, 12, '0'), 'p' || (i %% %d), 'u' || (i %% %d),
			(ARRAY['queued', 'running', 'succeeded', 'failed', 'canceled'])[i %% 5 + 1],
			1, to_timestamp((1764000000000 + i) / 1000.0), to_timestamp((1764000000000 + i) / 1000.0), '{}'
		FROM generate_series(0, %d) AS i`, projects, owners, n-1),
	}, rebuildCounters...) {
		if _, err := s.pool.Exec(context.Background(), q); err != nil {
			tb.Fatalf("seed: %v", err)
		}
	}
}

// SeedFinished is sqlite.SeedFinished for PostgreSQL.
func SeedFinished(tb testing.TB, s *Store, n int, project string) {
	tb.Helper()
	at := time.Now().Add(-time.Hour).UnixMilli() - int64(n)
	for _, q := range append([]string{
		fmt.Sprintf(`INSERT INTO progressd_jobs (id, project, owner, state, seq, created_at, updated_at, finished_at, snapshot, progress)
		SELECT '00000000-0000-7000-8000-' || lpad(i::text, 12, '0'), '%[2]s', 'alice', 'succeeded', 3,
			to_timestamp((%[3]d + i) / 1000.0), to_timestamp((%[3]d + i) / 1000.0), to_timestamp((%[3]d + i) / 1000.0),
			json_build_object('job_id', '00000000-0000-7000-8000-' || lpad(i::text, 12, '0'), 'project', '%[2]s', 'owner', 'alice',
				'state', 'succeeded', 'progress', 1, 'seq', 3, 'message', repeat('0', 200))::text, 1
		FROM generate_series(0, %[1]d - 1) AS i`, n, project, at),
		fmt.Sprintf(`INSERT INTO progressd_job_logs (job_id, n, t, stream, stage, text)
		SELECT j.id, k, (extract(epoch FROM j.finished_at) * 1000)::bigint, 'stdout', 'work',
			'line ' || k || ' of a job, as long as an ordinary log line: ' || j.id
		FROM progressd_jobs j, generate_series(1, 10) AS k
		WHERE j.project = '%s' AND (extract(epoch FROM j.created_at) * 1000)::bigint %% 10 = 0`, project),
	}, rebuildCounters...) {
		if _, err := s.pool.Exec(context.Background(), q); err != nil {
			tb.Fatalf("seed: %v", err)
		}
	}
}

// rebuildCounters recounts the project counters from the jobs (migration
// 2's statements), after a seed that inserted jobs by SQL.
var rebuildCounters = []string{
	`DELETE FROM progressd_project_owners`, `DELETE FROM progressd_projects`,
	`INSERT INTO progressd_project_owners
		SELECT project, owner, count(*) FILTER (WHERE state = 'queued'), count(*) FILTER (WHERE state = 'running'),
			count(*) FILTER (WHERE state = 'succeeded'), count(*) FILTER (WHERE state = 'failed'),
			count(*) FILTER (WHERE state = 'canceled'), (extract(epoch FROM max(updated_at)) * 1000)::bigint
		FROM progressd_jobs GROUP BY project, owner`,
	`INSERT INTO progressd_projects
		SELECT project, sum(queued), sum(running), sum(succeeded), sum(failed), sum(canceled), max(last_activity_at)
		FROM progressd_project_owners GROUP BY project`,
	`ANALYZE`,
}
