package postgres

import (
	"context"
	"fmt"
	"testing"
)

// ListQuery exposes the SELECT List runs, for EXPLAIN in tests.
var ListQuery = queries.List

// SchemaVersion is the version the migrations bring a database to.
func SchemaVersion() int { return len(migrations) }

// SeedJobs is sqlite.SeedJobs for PostgreSQL.
func SeedJobs(tb testing.TB, s *Store, n, projects, owners int) {
	tb.Helper()
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO progressd_jobs (id, project, owner, state, seq, created_at, updated_at, snapshot)
		SELECT '00000000-0000-7000-8000-' || lpad(i::text, 12, '0'), 'p' || (i %% %d), 'u' || (i %% %d),
			(ARRAY['queued', 'running', 'succeeded', 'failed', 'canceled'])[i %% 5 + 1],
			1, to_timestamp((1764000000000 + i) / 1000.0), to_timestamp((1764000000000 + i) / 1000.0), '{}'
		FROM generate_series(0, %d) AS i`, projects, owners, n-1),
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
	} {
		if _, err := s.pool.Exec(context.Background(), q); err != nil {
			tb.Fatalf("seed: %v", err)
		}
	}
}
