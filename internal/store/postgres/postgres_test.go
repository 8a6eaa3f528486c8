package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
	"github.com/progressd/progressd/internal/store/postgres"
	"github.com/progressd/progressd/internal/store/storetest"
	"github.com/progressd/progressd/internal/testsvc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func open(t testing.TB, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), url)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// TestConformance runs the shared suite; every subtest gets a fresh schema.
func TestConformance(t *testing.T) {
	testsvc.PostgresURL(t) // skip once, not in each parallel subtest
	storetest.Run(t, storetest.Harness{
		NewDB: func(t *testing.T) func(t *testing.T) store.Store {
			url := testsvc.PostgresSchema(t)
			return func(t *testing.T) store.Store { return open(t, url) }
		},
	})
}

// query runs one statement on url outside the store, for inspection.
func query(t *testing.T, url, sql string, args ...any) pgx.Rows {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	rows, err := conn.Query(t.Context(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return rows
}

func exec(t *testing.T, url, sql string) {
	t.Helper()
	query(t, url, sql).Close()
}

func newJob(t testing.TB, n int, project string) progress.Snapshot {
	t.Helper()
	s, err := progress.New(progress.NewJob{
		ID: fmt.Sprintf("0195522a-0000-7000-8000-%012x", n), Project: project, Owner: "alice",
		Stages: []progress.StageSpec{{Name: "fetch"}, {Name: "encode"}, {Name: "upload"}},
	}, time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMigrationIsVersionedAndIdempotent(t *testing.T) {
	url := testsvc.PostgresSchema(t)
	// Several nodes starting at once: the advisory lock makes one migrate
	// and the others find the schema done.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			s, err := postgres.Open(t.Context(), url)
			if err != nil {
				t.Errorf("concurrent Open: %v", err)
				return
			}
			s.Close()
		})
	}
	wg.Wait()
	rows := query(t, url, `SELECT version FROM progressd_schema_migrations ORDER BY version`)
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	want := make([]int, postgres.SchemaVersion())
	for i := range want {
		want[i] = i + 1
	}
	if fmt.Sprint(versions) != fmt.Sprint(want) {
		t.Fatalf("schema versions = %v, want %v", versions, want)
	}
}

func TestOpenRejectsNewerSchema(t *testing.T) {
	url := testsvc.PostgresSchema(t)
	open(t, url).Close()
	exec(t, url, `INSERT INTO progressd_schema_migrations (version) VALUES (99)`)
	_, err := postgres.Open(t.Context(), url)
	if err == nil || !strings.Contains(err.Error(), "schema version 99") || !strings.Contains(err.Error(), "run a newer progressd") {
		t.Fatalf("Open of a newer schema = %v, want an error naming version 99 and what to do", err)
	}
}

func TestOpenErrorsSayWhatToDo(t *testing.T) {
	base := testsvc.PostgresURL(t)
	for _, tc := range []struct {
		name, url, want string
	}{
		{"not a URL", "postgres://%zz", "use postgres://"},
		{"missing schema", base + "&search_path=progressd_no_such_schema", "CREATE SCHEMA"},
		// A closed loopback port: nothing listens on port 1.
		{"nothing listening", "postgres://postgres:secret-pw@127.0.0.1:1/test?sslmode=disable&connect_timeout=2", "is PostgreSQL running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := postgres.Open(t.Context(), tc.url)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open error %q does not say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret-pw") {
				t.Errorf("Open error leaks the password: %q", err)
			}
		})
	}
}

// TestSnapshotWithNUL checks a report the contract allows but jsonb would
// refuse: a message holding U+0000.
func TestSnapshotWithNUL(t *testing.T) {
	s := open(t, testsvc.PostgresSchema(t))
	defer s.Close()
	j := newJob(t, 1, "p1")
	if err := s.Create(t.Context(), j); err != nil {
		t.Fatal(err)
	}
	msg := "nul \x00 here"
	next, err := progress.Apply(j, progress.Report{Message: &msg}, j.UpdatedAt.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(t.Context(), []progress.Snapshot{next}); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got, err := s.Get(t.Context(), j.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Message != msg || got.Seq != next.Seq {
		t.Fatalf("Get = seq %d message %q, want seq %d message %q", got.Seq, got.Message, next.Seq, msg)
	}
}

// TestTwoNodesSaveWithoutDeadlock saves overlapping batches in opposite
// orders from two stores (two nodes' write-behinds) on the same database:
// without the ordered row locks this deadlocks within a few rounds.
func TestTwoNodesSaveWithoutDeadlock(t *testing.T) {
	url := testsvc.PostgresSchema(t)
	a, b := open(t, url), open(t, url)
	defer a.Close()
	defer b.Close()
	const jobs, rounds = 40, 30
	snaps := make([]progress.Snapshot, jobs)
	for i := range snaps {
		snaps[i] = newJob(t, i, "p1")
		if err := a.Create(t.Context(), snaps[i]); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for node, s := range []*postgres.Store{a, b} {
		wg.Go(func() {
			for r := range rounds {
				batch := make([]progress.Snapshot, jobs)
				for i := range batch {
					k := i
					if node == 1 {
						k = jobs - 1 - i // the other node sends them in reverse
					}
					batch[i] = snaps[k].Clone()
					batch[i].Seq = uint64(2 + 2*r + node)
				}
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				err := s.Save(ctx, batch)
				cancel()
				if err != nil {
					t.Errorf("node %d Save: %v", node, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, j := range snaps {
		got, err := a.Get(t.Context(), j.JobID)
		if err != nil {
			t.Fatal(err)
		}
		if want := uint64(2 + 2*(rounds-1) + 1); got.Seq != want {
			t.Fatalf("job %s seq %d, want %d", j.JobID, got.Seq, want)
		}
	}
}

// TestListUsesIndexes checks that no page reads the whole table: a filter
// matching many jobs walks an index backwards in id order and stops after
// one page (no sort), and a filter matching few reads them by its index.
func TestListUsesIndexes(t *testing.T) {
	url := testsvc.PostgresSchema(t)
	open(t, url).Close()
	// 20,000 jobs over 4 projects and 2 owners plus 5 of a rare project,
	// written in SQL: the plan depends on the table's size and statistics,
	// not on what the snapshots hold.
	exec(t, url, `INSERT INTO progressd_jobs (id, project, owner, state, seq, created_at, updated_at, snapshot)
		SELECT format('0195522a-0000-7000-8000-%s', lpad(to_hex(i), 12, '0')),
			CASE WHEN i % 4000 = 0 THEN 'rare' ELSE 'p' || (i % 4) END, 'o' || (i % 2),
			CASE WHEN i % 10 = 0 THEN 'running' ELSE 'succeeded' END, 1, now(), now(), '{}'
		FROM generate_series(1, 20000) AS i`)
	exec(t, url, "ANALYZE progressd_jobs")
	const mid = "0195522a-0000-7000-8000-000000002000"
	for _, tc := range []struct {
		q        progress.Query
		noSort   bool
		wantScan string
	}{
		{progress.Query{}, true, "Index Scan Backward"},
		{progress.Query{Cursor: mid}, true, "Index Scan Backward"},
		{progress.Query{Project: "p1", Cursor: mid}, true, "Index Scan Backward"},
		{progress.Query{Owner: "o1"}, true, "Index Scan Backward"},
		{progress.Query{States: []progress.State{progress.Succeeded}}, true, "Index Scan Backward"},
		{progress.Query{Project: "rare"}, false, "progressd_jobs_project_id"},
	} {
		sql, args := postgres.ListQuery(tc.q)
		rows := query(t, url, "EXPLAIN "+sql, args...)
		plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Join(plan, "\n")
		if strings.Contains(text, "Seq Scan") || (tc.noSort && strings.Contains(text, "Sort")) || !strings.Contains(text, tc.wantScan) {
			t.Errorf("List %+v plan:\n%s\nwant %s, no sequential scan, no sort: %v", tc.q, text, tc.wantScan, tc.noSort)
		}
	}
}

func TestCanceledOpen(t *testing.T) {
	url := testsvc.PostgresSchema(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if s, err := postgres.Open(ctx, url); !errors.Is(err, context.Canceled) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open with a canceled context = %v, want context.Canceled", err)
	}
}

// BenchmarkSave measures one Save of a batch of 100 snapshots: the write
// the write-behind makes once a second at most, each job a second later
// than in the last.
func BenchmarkSave(b *testing.B) {
	const batch = 100
	s := open(b, testsvc.PostgresSchema(b))
	defer s.Close()
	snaps := make([]progress.Snapshot, batch)
	for i := range snaps {
		snaps[i] = newJob(b, i, "p1")
		if err := s.Create(b.Context(), snaps[i]); err != nil {
			b.Fatal(err)
		}
	}
	s.SetIdleStep(store.IdleStep(24 * time.Hour)) // as a node with the default --abandon-after
	start := snaps[0].UpdatedAt
	for n := 0; b.Loop(); n++ {
		for i := range snaps {
			snaps[i].Seq = uint64(n + 2)
			snaps[i].Progress = float64(n%1000) / 1000
			// A second apart, as flushes of a job that reports all the
			// time (--flush-interval): idle_since moves at every save.
			snaps[i].UpdatedAt = progress.At(start.Add(time.Duration(n+1) * time.Second))
		}
		if err := s.Save(b.Context(), snaps); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "snapshots/s")
}

// BenchmarkProjects: GET /api/v1/projects' read over 100,000 jobs in
// 1,000 projects (storetest.BenchmarkProjects).
func BenchmarkProjects(b *testing.B) {
	s := open(b, testsvc.PostgresSchema(b))
	defer s.Close()
	postgres.SeedJobs(b, s, storetest.BenchJobs, storetest.BenchProjects, storetest.BenchOwners)
	storetest.BenchmarkProjects(b, s)
}

// BenchmarkPurgeWhileSaving: the retention sweep against the writes of
// reports (storetest.BenchmarkPurgeWhileSaving).
func BenchmarkPurgeWhileSaving(b *testing.B) {
	s := open(b, testsvc.PostgresSchema(b))
	defer s.Close()
	storetest.BenchmarkPurgeWhileSaving(b, s, func(n int, project string) { postgres.SeedFinished(b, s, n, project) })
}

// TestOneChangePerTransition: one stall is reported once, and two stores (two nodes) racing to finish the
// same jobs report each job's end once.
func TestOneChangePerTransition(t *testing.T) {
	url := testsvc.PostgresSchema(t)
	a, b := open(t, url), open(t, url)
	defer a.Close()
	defer b.Close()
	var rec storetest.Changes
	hook := func(_ context.Context, _ pgx.Tx, ch []store.Change) error { rec.Add(ch); return nil }
	a.SetOnChange(hook)
	b.SetOnChange(hook)
	storetest.OneChangePerTransition(t, a, b, &rec)
	storetest.OneChangePerStall(t, b, &rec)
}
