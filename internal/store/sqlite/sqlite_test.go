package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
	"github.com/progressd/progressd/internal/store/sqlite"
	"github.com/progressd/progressd/internal/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func openFile(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		NewDB: func(t *testing.T) func(t *testing.T) store.Store {
			path := filepath.Join(t.TempDir(), "data", "progressd.db")
			return func(t *testing.T) store.Store { return openFile(t, path) }
		},
	})
}

func TestOpenSetsPragmas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "dir", "progressd.db")
	s := openFile(t, path)
	defer s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file not created: %v", err)
	}
	for pragma, want := range map[string]string{
		"journal_mode": "wal",
		"synchronous":  "1", // NORMAL
		"foreign_keys": "1",
		"busy_timeout": "5000",
		"user_version": fmt.Sprint(sqlite.SchemaVersion()),
	} {
		if got := sqlite.Pragma(t, s, pragma); got != want {
			t.Errorf("PRAGMA %s = %q, want %q", pragma, got, want)
		}
	}
}

func TestOpenRejectsNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "progressd.db")
	s := openFile(t, path)
	sqlite.Exec(t, s, "PRAGMA user_version = 99")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := sqlite.Open(t.Context(), path)
	if err == nil || !strings.Contains(err.Error(), "schema version 99") {
		t.Fatalf("Open of a newer schema = %v, want an error naming schema version 99", err)
	}
}

func TestOpenRejectsBadPath(t *testing.T) {
	for _, path := range []string{"", filepath.Join(t.TempDir(), "what?.db")} {
		if s, err := sqlite.Open(t.Context(), path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", path)
		}
	}
}

// TestListUsesIndexes checks that each single filter reads one index range
// in id order: no full scan of the table and no sort of the result.
func TestListUsesIndexes(t *testing.T) {
	s := openFile(t, filepath.Join(t.TempDir(), "progressd.db"))
	defer s.Close()
	for _, tc := range []struct {
		q     progress.Query
		index string
	}{
		{progress.Query{}, "sqlite_autoindex_jobs_1"},
		{progress.Query{Cursor: "x"}, "sqlite_autoindex_jobs_1"},
		{progress.Query{Project: "p1", Cursor: "x"}, "jobs_project_id"},
		{progress.Query{Owner: "alice", Cursor: "x"}, "jobs_owner_id"},
		{progress.Query{States: []progress.State{progress.Running}, Cursor: "x"}, "jobs_state_id"},
	} {
		plan := sqlite.ExplainList(t, s, tc.q)
		if strings.Contains(plan, "TEMP B-TREE") || !strings.Contains(plan, "INDEX "+tc.index) {
			t.Errorf("List %+v plan:\n%s\nwant a range of index %s without a sort", tc.q, plan, tc.index)
		}
	}
}

// TestLapsingUsesIndexes: the sweep for stalls and abandoned jobs reads
// one range of a partial index, oldest first, whatever the number of
// jobs: no scan of the table and no sort.
func TestLapsingUsesIndexes(t *testing.T) {
	s := openFile(t, filepath.Join(t.TempDir(), "progressd.db"))
	defer s.Close()
	due, idle := sqlite.ExplainLapsing(t, s)
	for _, tc := range []struct{ plan, index string }{{due, "jobs_due_at"}, {idle, "jobs_idle_since"}} {
		if strings.Contains(tc.plan, "TEMP B-TREE") || !strings.Contains(tc.plan, "INDEX "+tc.index) {
			t.Errorf("plan:\n%s\nwant a range of index %s without a sort", tc.plan, tc.index)
		}
	}
}

// BenchmarkSave measures one Save of a batch of 100 snapshots: the write
// the write-behind makes once a second at most, each job a second later
// than in the last.
func BenchmarkSave(b *testing.B) {
	const batch = 100
	s := openFile(b, filepath.Join(b.TempDir(), "progressd.db"))
	defer s.Close()
	snaps := make([]progress.Snapshot, batch)
	for i := range snaps {
		snap, err := progress.New(progress.NewJob{
			ID: fmt.Sprintf("0195522a-0000-7000-8000-%012x", i), Project: "p1", Owner: "alice",
			Stages: []progress.StageSpec{{Name: "fetch"}, {Name: "encode"}, {Name: "upload"}},
		}, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Create(b.Context(), snap); err != nil {
			b.Fatal(err)
		}
		snaps[i] = snap
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

// BenchmarkFlushOrder: a write-behind flush of 3,000 running jobs, in
// chunks of 256 as store.WriteBehind writes them, the jobs in map order
// (random) and in id order (what WriteBehind does): in id order a chunk
// rewrites neighbouring rows, few pages, where in random order every job
// is a page of its own appended to the WAL again by each chunk.
func BenchmarkFlushOrder(b *testing.B) {
	for _, order := range []string{"random", "id"} {
		b.Run(order, func(b *testing.B) {
			const n, chunk = 3000, 256
			s := openFile(b, filepath.Join(b.TempDir(), "progressd.db"))
			defer s.Close()
			snaps := make([]progress.Snapshot, n)
			for i := range snaps {
				snap, err := progress.New(progress.NewJob{
					ID: fmt.Sprintf("0195522a-0000-7000-8000-%012x", i), Project: "p1", Owner: "alice",
				}, time.Now())
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Create(b.Context(), snap); err != nil {
					b.Fatal(err)
				}
				snap.State, snap.Seq = progress.Running, 2
				if err := s.Save(b.Context(), []progress.Snapshot{snap}); err != nil {
					b.Fatal(err)
				}
				snaps[i] = snap
			}
			s.SetIdleStep(store.IdleStep(24 * time.Hour))
			start := snaps[0].UpdatedAt
			for k := 0; b.Loop(); k++ {
				for i := range snaps {
					snaps[i].Seq = uint64(k + 3)
					snaps[i].Progress = float64(k%1000) / 1000
					snaps[i].UpdatedAt = progress.At(start.Add(time.Duration(k+1) * time.Second))
				}
				rand.Shuffle(n, func(i, j int) { snaps[i], snaps[j] = snaps[j], snaps[i] })
				if order == "id" {
					slices.SortFunc(snaps, func(a, b progress.Snapshot) int { return strings.Compare(a.JobID, b.JobID) })
				}
				for w := 0; w < n; w += chunk {
					if err := s.Save(b.Context(), snaps[w:min(w+chunk, n)]); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/job")
		})
	}
}

// BenchmarkProjects: GET /api/v1/projects' read over 100,000 jobs in
// 1,000 projects (storetest.BenchmarkProjects).
func BenchmarkProjects(b *testing.B) {
	s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	sqlite.SeedJobs(b, s, storetest.BenchJobs, storetest.BenchProjects, storetest.BenchOwners)
	storetest.BenchmarkProjects(b, s)
}

// BenchmarkPurgeWhileSaving: the retention sweep against the writes of
// reports (storetest.BenchmarkPurgeWhileSaving).
func BenchmarkPurgeWhileSaving(b *testing.B) {
	s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "purge.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.BenchmarkPurgeWhileSaving(b, s, func(n int, project string) { sqlite.SeedFinished(b, s, n, project) })
}

// TestOneChangePerTransition: one stall is reported once, and two stores on one file (two processes)
// racing to finish the same jobs report each job's end once.
func TestOneChangePerTransition(t *testing.T) {
	path := filepath.Join(t.TempDir(), "progressd.db")
	a, b := openFile(t, path), openFile(t, path)
	defer a.Close()
	defer b.Close()
	var rec storetest.Changes
	hook := func(_ context.Context, _ *sql.Tx, ch []store.Change) error { rec.Add(ch); return nil }
	a.SetOnChange(hook)
	b.SetOnChange(hook)
	storetest.OneChangePerTransition(t, a, b, &rec)
	storetest.OneChangePerStall(t, b, &rec)
}

// BenchmarkLapsing: the once-a-second sweep for stalls and abandoned jobs
// over 1,000,000 jobs, 400,000 of them unfinished (idle since their last
// change, 40,000 with a stall deadline too): "none due" is the usual
// tick, "500 due" a tick that finds a full batch of each kind.
func BenchmarkLapsing(b *testing.B) {
	s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const jobs = 1_000_000
	sqlite.SeedJobs(b, s, jobs, 1000, 37)
	sqlite.Exec(b, s, `UPDATE jobs SET idle_since = updated_at WHERE state IN ('queued', 'running')`)
	sqlite.Exec(b, s, `UPDATE jobs SET due_at = updated_at + 60000 WHERE state = 'running' AND seq % 5 = 0 AND rowid % 5 = 1`)
	base := time.UnixMilli(1764000000000)
	for _, tc := range []struct {
		name      string
		now, idle time.Time
	}{
		{"none-due", base, base.Add(-time.Hour)},
		{"500-due", base.Add(time.Hour), base.Add(time.Hour)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				start := time.Now()
				err := s.Lapsing(b.Context(), store.LapseQuery{Now: tc.now, IdleBefore: tc.idle, Limit: 500}, func([]string) error { return nil })
				lat = append(lat, time.Since(start))
				if err != nil {
					b.Fatal(err)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
