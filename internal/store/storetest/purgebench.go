package storetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
)

// purgeWindow is how long the purge runs, then rests, in turn: the Saves
// of a rest are the baseline, taken on the same database, the same
// machine and within seconds of the Saves they are compared with, which
// is what makes the comparison hold on a machine whose load swings.
const purgeWindow = 2 * time.Second

// BenchmarkPurgeWhileSaving measures what the retention sweep costs the
// writes of reports (issue 14: report p99 during a purge no worse than 2×
// without it). seed fills s with n jobs of a project that finished an
// hour ago (n: PROGRESSD_BENCH_PURGE_JOBS, default 1,000,000), by a bulk
// insert. A writer then saves 100 running jobs of the same project and
// owner in a tight loop (the write-behind's flush of intermediate
// progress: one transaction that moves the project's counter row, as the
// purge does), while store.PurgePaced — the sweep jobs.Service runs —
// deletes the old jobs in windows of purgeWindow, resting as long between
// them, until all are gone or PROGRESSD_BENCH_PURGE_MAX (default 15m) has
// passed. It reports the Save p99 in the rests (save-p99-ms) and in the
// windows (save-p99-purging-ms), over the whole run and as the range of
// the windows' own p99 (logged), and the purge rate while it ran.
// PROGRESSD_BENCH_PURGE_FIXED=N purges with fixed batches of N and no
// pause instead (the sweep before PurgePaced, for comparison).
func BenchmarkPurgeWhileSaving(b *testing.B, s store.Store, seed func(n int, project string)) {
	n := envInt(b, "PROGRESSD_BENCH_PURGE_JOBS", 1_000_000)
	fixed := envInt(b, "PROGRESSD_BENCH_PURGE_FIXED", 0)
	limit := 15 * time.Minute
	if v := os.Getenv("PROGRESSD_BENCH_PURGE_MAX"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("PROGRESSD_BENCH_PURGE_MAX: %v", err)
		}
		limit = d
	}
	const project = "bench"
	for b.Loop() {
		start := time.Now()
		seed(n, project)
		b.Logf("seeded %d finished jobs in %s", n, time.Since(start).Round(time.Millisecond))
		live := make([]progress.Snapshot, 100)
		for i := range live {
			snap, err := progress.New(progress.NewJob{ID: fmt.Sprintf("0195522b-0000-7000-8000-%012x", i), Project: project, Owner: "alice"}, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Create(b.Context(), snap); err != nil {
				b.Fatal(err)
			}
			live[i] = snap
		}

		var window atomic.Int64 // odd: the purge runs
		lat := map[int64][]time.Duration{}
		stop := make(chan struct{})
		var saver sync.WaitGroup
		stopSaver := sync.OnceFunc(func() { close(stop); saver.Wait() })
		defer stopSaver() // before the store closes, also after a Fatal
		saver.Go(func() {
			for seq := uint64(2); ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				for i := range live {
					live[i].Seq = seq
					live[i].UpdatedAt = progress.At(time.Now())
				}
				w := window.Load()
				t0 := time.Now()
				if err := s.Save(context.Background(), live); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})

		purge := func(ctx context.Context) (int, error) {
			return store.PurgePaced(ctx, s, time.Now(), nil)
		}
		if fixed > 0 {
			purge = func(ctx context.Context) (int, error) {
				total := 0
				for ctx.Err() == nil {
					gone, err := s.Purge(ctx, time.Now(), fixed)
					total += len(gone)
					if err != nil || len(gone) < fixed {
						return total, err
					}
				}
				return total, ctx.Err()
			}
		}
		// purged counts what the purge acknowledged; a batch whose commit
		// the window's deadline interrupted may have been deleted
		// unacknowledged, so the end is found by looking.
		purged, running, done := 0, time.Duration(0), false
		deadline := time.Now().Add(limit)
		for w := int64(0); ; w++ {
			window.Store(w)
			if w%2 == 0 {
				time.Sleep(purgeWindow)
				if done || time.Now().After(deadline) {
					break // a rest after the last window, as before the first
				}
				continue
			}
			ctx, cancel := context.WithTimeout(b.Context(), purgeWindow)
			t0 := time.Now()
			k, err := purge(ctx)
			running += time.Since(t0)
			cancel()
			purged += k
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				b.Fatal(err)
			}
			if err == nil {
				left, _, err := s.List(b.Context(), progress.Query{Project: project, States: []progress.State{progress.Succeeded}, Limit: 1})
				if err != nil || len(left) > 0 {
					b.Fatalf("the purge ended with jobs left (%v), after %d of %d", err, purged, n)
				}
				done = true
			}
		}
		stopSaver()

		var rest, purging []time.Duration
		var restP99, purgingP99 []float64
		for w, d := range lat {
			if w%2 == 0 {
				rest = append(rest, d...)
				restP99 = append(restP99, p99ms(d))
			} else {
				purging = append(purging, d...)
				purgingP99 = append(purgingP99, p99ms(d))
			}
		}
		if !done {
			b.Errorf("purged %d of %d jobs within %s", purged, n, limit)
		}
		if len(purging) == 0 || len(rest) == 0 {
			b.Fatal("no Save measured with or without the purge")
		}
		b.ReportMetric(p99ms(rest), "save-p99-ms")
		b.ReportMetric(p99ms(purging), "save-p99-purging-ms")
		b.ReportMetric(float64(n)/running.Seconds(), "purged/s")
		b.ReportMetric(float64(len(purging)), "saves-purging")
		b.Logf("%d jobs purged (%d acknowledged) in %s of purging; Save p99 of each window: rests %.1f–%.1f ms, purging %.1f–%.1f ms",
			n, purged, running.Round(time.Millisecond), slices.Min(restP99), slices.Max(restP99), slices.Min(purgingP99), slices.Max(purgingP99))
	}
}

func p99ms(d []time.Duration) float64 {
	d = slices.Clone(d)
	slices.Sort(d)
	return float64(d[len(d)*99/100].Microseconds()) / 1000
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		b.Fatalf("%s=%q: want a whole number", name, v)
	}
	return n
}
