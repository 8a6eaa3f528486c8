package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
)

// BenchmarkPurgeWhileSaving measures what the retention sweep costs the
// writes of reports: the p99 latency of a write-behind Save (100 running
// jobs' snapshots, one transaction) while Purge deletes 100,000 old
// finished jobs, store.PurgeBatch per transaction as jobs.Service.Purge
// does, against the p99 of as many Saves
// without it. Both are reported (save-p99-ms, save-p99-purging-ms), with
// the purge rate.
func BenchmarkPurgeWhileSaving(b *testing.B) {
	const old, batch = 100_000, 100
	for b.Loop() {
		s, err := Open(b.Context(), filepath.Join(b.TempDir(), "purge.db"))
		if err != nil {
			b.Fatal(err)
		}
		fillFinished(b, s, old)
		snaps := liveJobs(b, s, batch)
		saves := func(n int, seq *uint64) []time.Duration {
			var lat []time.Duration
			for range n {
				*seq++
				for i := range snaps {
					snaps[i].Seq = *seq
				}
				start := time.Now()
				if err := s.Save(b.Context(), snaps); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			return lat
		}
		seq := uint64(1)
		base := saves(200, &seq)

		type result struct {
			n   int
			err error
		}
		done := make(chan result, 1)
		start := time.Now()
		go func() {
			total := 0
			for {
				ids, err := s.Purge(context.Background(), time.Now(), store.PurgeBatch)
				total += len(ids)
				if err != nil || len(ids) == 0 {
					done <- result{total, err}
					return
				}
			}
		}()
		var during []time.Duration
		var res result
	loop:
		for len(during) < 100_000 {
			select {
			case res = <-done:
				break loop
			default:
				during = append(during, saves(1, &seq)...)
			}
		}
		took := time.Since(start)
		if len(during) == 100_000 {
			res = <-done
		}
		if res.err != nil {
			b.Fatal(res.err)
		}
		if purged := res.n; purged != old {
			b.Fatalf("purged %d, want %d", purged, old)
		}
		b.ReportMetric(p99(base), "save-p99-ms")
		b.ReportMetric(p99(during), "save-p99-purging-ms")
		b.ReportMetric(float64(old)/took.Seconds(), "purged/s")
		b.ReportMetric(float64(len(during)), "saves-during")
		_ = s.Close()
	}
}

func p99(d []time.Duration) float64 {
	d = slices.Clone(d)
	slices.Sort(d)
	return float64(d[len(d)*99/100].Microseconds()) / 1000
}

// fillFinished inserts n jobs finished an hour ago, in one transaction.
func fillFinished(b *testing.B, s *Store, n int) {
	tx, err := s.db.BeginTx(b.Context(), nil)
	if err != nil {
		b.Fatal(err)
	}
	at := time.Now().Add(-time.Hour)
	for i := range n {
		snap, err := progress.New(progress.NewJob{ID: fmt.Sprintf("0195522a-0000-7000-8000-%012x", i), Project: "old", Owner: "alice"}, at)
		if err != nil {
			b.Fatal(err)
		}
		st := progress.Succeeded
		if snap, err = progress.Apply(snap, progress.Report{State: &st}, at); err != nil {
			b.Fatal(err)
		}
		r, err := encode(snap)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.ExecContext(b.Context(), `INSERT INTO jobs (id, project, owner, state, seq, created_at, updated_at, finished_at, snapshot, progress)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.id, "old", "alice", r.state, r.seq, r.updatedAt, r.updatedAt, r.finishedAt, r.snapshot, r.progress); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}

// liveJobs creates n running jobs and returns their snapshots.
func liveJobs(b *testing.B, s *Store, n int) []progress.Snapshot {
	out := make([]progress.Snapshot, n)
	for i := range out {
		snap, err := progress.New(progress.NewJob{ID: fmt.Sprintf("0195522b-0000-7000-8000-%012x", i), Project: "live", Owner: "alice"}, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Create(b.Context(), snap); err != nil {
			b.Fatal(err)
		}
		out[i] = snap
	}
	return out
}
