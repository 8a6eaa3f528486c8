package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
	"github.com/progressd/progressd/internal/store/sqlite"
	"github.com/progressd/progressd/internal/testsvc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// faultyStore wraps the real store to count Saves and to make them fail or
// hang on demand.
type faultyStore struct {
	store.Store
	saves     atomic.Int64 // Save calls that reached the database
	snapshots atomic.Int64 // snapshots in those calls
	failNext  atomic.Int64 // fail this many Saves
	hang      atomic.Bool  // Saves wait for their context to end
	hung      chan struct{}
	// gate, if set, holds every Save until it is closed (after telling
	// hung).
	gate chan struct{}
	// afterRead, if set, runs once a Get or List has read the database and
	// before it returns, to stage a race with a flush.
	afterRead func()
	// onSave, if set, is shown every batch Save is given.
	onSave func([]progress.Snapshot)
}

func (f *faultyStore) Get(ctx context.Context, id string) (progress.Snapshot, error) {
	s, err := f.Store.Get(ctx, id)
	if f.afterRead != nil {
		f.afterRead()
	}
	return s, err
}

func (f *faultyStore) List(ctx context.Context, q progress.Query) ([]progress.Snapshot, string, error) {
	jobs, next, err := f.Store.List(ctx, q)
	if f.afterRead != nil {
		f.afterRead()
	}
	return jobs, next, err
}

var errInjected = errors.New("injected failure")

func (f *faultyStore) Save(ctx context.Context, snaps []progress.Snapshot) error {
	if f.onSave != nil {
		f.onSave(snaps)
	}
	if f.gate != nil {
		select {
		case f.hung <- struct{}{}:
		default:
		}
		<-f.gate
	}
	if f.hang.Load() {
		select {
		case f.hung <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	}
	if f.failNext.Add(-1) >= 0 {
		return errInjected
	}
	f.failNext.Store(0)
	if err := f.Store.Save(ctx, snaps); err != nil {
		return err
	}
	f.saves.Add(1) // counted once written, so tests can wait on it
	f.snapshots.Add(int64(len(snaps)))
	return nil
}

type bundle struct {
	path string
	db   *faultyStore
	wb   *store.WriteBehind
	job  progress.Snapshot
}

// setup opens a SQLite file with one job in it and a WriteBehind in front
// of it that flushes every interval. Cleanup closes both.
func setup(t *testing.T, interval time.Duration, log *slog.Logger) *bundle {
	t.Helper()
	path := filepath.Join(t.TempDir(), "progressd.db")
	inner, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inner.Close() })
	b := &bundle{path: path, db: &faultyStore{Store: inner, hung: make(chan struct{}, 1)}}
	b.wb = store.NewWriteBehind(b.db, interval, log)
	t.Cleanup(func() {
		b.db.hang.Store(false)
		b.db.failNext.Store(0)
		if err := b.wb.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	b.job = b.newJob(t, 0)
	return b
}

func (b *bundle) newJob(t *testing.T, i int) progress.Snapshot {
	t.Helper()
	s, err := progress.New(progress.NewJob{
		ID: fmt.Sprintf("0195522a-0000-7000-8000-%012x", i), Project: "p1", Owner: "alice",
		Stages: []progress.StageSpec{{Name: "fetch"}, {Name: "encode"}},
	}, time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.wb.Create(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	return s
}

func at(s progress.Snapshot, seq uint64) progress.Snapshot {
	s = s.Clone()
	s.Seq = seq
	s.State = progress.Running
	s.Message = fmt.Sprintf("seq %d", seq)
	return s
}

// stored returns the seq of job id in the database, read through a store
// opened afresh on the file: what a restarted process would see.
func (b *bundle) stored(t *testing.T, id string) uint64 {
	t.Helper()
	return b.storedAll(t, id)[0]
}

func (b *bundle) storedAll(t *testing.T, ids ...string) []uint64 {
	t.Helper()
	fresh, err := sqlite.Open(t.Context(), b.path)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	seqs := make([]uint64, len(ids))
	for i, id := range ids {
		s, err := fresh.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		seqs[i] = s.Seq
	}
	return seqs
}

func (b *bundle) get(t *testing.T, id string) uint64 {
	t.Helper()
	s, err := b.wb.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return s.Seq
}

func (b *bundle) save(t *testing.T, s progress.Snapshot, durable bool) {
	t.Helper()
	if err := b.wb.Save(t.Context(), s, durable); err != nil {
		t.Fatalf("Save seq %d durable=%v: %v", s.Seq, durable, err)
	}
}

// TestWriteBehindGroupCommit: durable saves that come while one is being
// written are written together, in one transaction, and each caller
// returns only once its snapshot is in the database.
func TestWriteBehindGroupCommit(t *testing.T) {
	b := setup(t, time.Hour, nil)
	jobs := []progress.Snapshot{b.job}
	for i := 1; i <= 4; i++ {
		jobs = append(jobs, b.newJob(t, i))
	}
	b.db.gate = make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, len(jobs))
	save := func(s progress.Snapshot) { wg.Go(func() { errs <- b.wb.Save(t.Context(), at(s, 5), true) }) }
	save(jobs[0])
	<-b.db.hung // the first save is being written
	for _, j := range jobs[1:] {
		save(j)
	}
	testsvc.Eventually(t, 10*time.Second, "four saves gathered for the next commit", func() bool { return store.Gathering(b.wb) == 4 })
	close(b.db.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := b.db.saves.Load(); n != 2 {
		t.Fatalf("%d transactions for five durable saves, four of them waiting together: want 2", n)
	}
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.JobID
	}
	for i, seq := range b.storedAll(t, ids...) {
		if seq != 5 {
			t.Errorf("job %d stored at seq %d, want 5", i, seq)
		}
	}
}

// TestWriteBehindFlushesInIDOrder: a flush writes its jobs in id order,
// chunk after chunk, whatever order they were reported in: ids are
// time-ordered like the rows of the jobs table, so each chunk rewrites
// neighbouring rows (BenchmarkFlushOrder in package sqlite).
func TestWriteBehindFlushesInIDOrder(t *testing.T) {
	b := setup(t, time.Hour, nil)
	const n = 600 // more than two chunks
	jobs := make([]progress.Snapshot, n)
	for i := range jobs {
		jobs[i] = b.newJob(t, i+1)
	}
	var written []string
	b.db.onSave = func(snaps []progress.Snapshot) {
		for _, s := range snaps {
			written = append(written, s.JobID)
		}
	}
	for _, i := range rand.Perm(n) {
		b.save(t, at(jobs[i], 2), false)
	}
	if err := b.wb.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(written) != n || !slices.IsSorted(written) {
		t.Errorf("a flush of %d jobs wrote %d, in id order: %v", n, len(written), slices.IsSorted(written))
	}
}

func TestWriteBehindCoalesces(t *testing.T) {
	const n = 1000
	interval := 50 * time.Millisecond
	b := setup(t, interval, nil)
	start := time.Now()
	for seq := uint64(2); seq < n+2; seq++ {
		b.save(t, at(b.job, seq), false)
	}
	elapsed := time.Since(start)
	if err := b.wb.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	// One write per tick that fell inside the loop, and the Flush.
	if saves, limit := b.db.saves.Load(), int64(elapsed/interval)+2; saves > limit {
		t.Errorf("%d saves in %v wrote to the database %d times; want at most %d", n, elapsed, saves, limit)
	}
	if got := b.stored(t, b.job.JobID); got != n+1 {
		t.Errorf("stored seq %d, want %d", got, n+1)
	}
	st := b.wb.Stats()
	if st.Written+st.Coalesced != n || st.Pending != 0 || st.Failures != 0 {
		t.Errorf("Stats = %+v; want written+coalesced = %d, nothing pending, no failures", st, n)
	}
}

func TestWriteBehindDurableSaveIsVisibleAtOnce(t *testing.T) {
	b := setup(t, time.Hour, nil)
	b.save(t, at(b.job, 2), true)
	if got := b.stored(t, b.job.JobID); got != 2 {
		t.Fatalf("after a durable save a fresh Open sees seq %d, want 2", got)
	}

	b.save(t, at(b.job, 3), false)
	if got := b.stored(t, b.job.JobID); got != 2 {
		t.Errorf("a non-durable save reached the database before a flush: seq %d", got)
	}
	if got := b.get(t, b.job.JobID); got != 3 {
		t.Errorf("Get = seq %d, want the pending seq 3", got)
	}
	b.save(t, at(b.job, 4), true) // drops the pending seq 3
	if st := b.wb.Stats(); st.Pending != 0 || st.Durable != 2 {
		t.Errorf("Stats = %+v; want nothing pending and 2 durable saves", st)
	}
	if got := b.stored(t, b.job.JobID); got != 4 {
		t.Errorf("fresh Open sees seq %d, want 4", got)
	}
}

func TestWriteBehindFlushesInBackground(t *testing.T) {
	b := setup(t, 5*time.Millisecond, nil)
	other := b.newJob(t, 1)
	b.save(t, at(b.job, 7), false)
	b.save(t, at(other, 3), false)
	testsvc.Eventually(t, 5*time.Second, "the background flush", func() bool {
		return b.wb.Stats().Pending == 0 && b.db.saves.Load() > 0
	})
	if got := b.stored(t, b.job.JobID); got != 7 {
		t.Errorf("stored seq %d, want 7", got)
	}
	if got := b.stored(t, other.JobID); got != 3 {
		t.Errorf("stored seq %d, want 3", got)
	}
}

func TestWriteBehindCloseFlushes(t *testing.T) {
	b := setup(t, time.Hour, nil)
	jobs := []progress.Snapshot{b.job}
	for i := 1; i < 600; i++ { // more than one flush chunk
		jobs = append(jobs, b.newJob(t, i))
	}
	for i, j := range jobs {
		b.save(t, at(j, uint64(2+i%5)), false)
	}
	if err := b.wb.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.JobID
	}
	for i, got := range b.storedAll(t, ids...) {
		if want := uint64(2 + i%5); got != want {
			t.Fatalf("job %d: stored seq %d after Close, want %d", i, got, want)
		}
	}
	if err := b.wb.Close(t.Context()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	b.save(t, at(b.job, 10), false) // after Close: written at once
	if got := b.stored(t, b.job.JobID); got != 10 {
		t.Errorf("a Save after Close was not written: stored seq %d, want 10", got)
	}
}

func TestWriteBehindStaleNeverOverwritesNewer(t *testing.T) {
	b := setup(t, time.Hour, nil)
	b.save(t, at(b.job, 10), true)
	b.save(t, at(b.job, 5), false) // a late intermediate report
	if got := b.get(t, b.job.JobID); got != 10 {
		t.Errorf("Get = seq %d, want 10", got)
	}
	if err := b.wb.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := b.stored(t, b.job.JobID); got != 10 {
		t.Errorf("stored seq %d, want 10", got)
	}

	// Two callers racing: the newer snapshot is reported first, non-durably.
	b.save(t, at(b.job, 12), false)
	b.save(t, at(b.job, 11), true)
	if got := b.get(t, b.job.JobID); got != 12 {
		t.Errorf("Get = seq %d, want the pending 12", got)
	}
	if err := b.wb.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := b.stored(t, b.job.JobID); got != 12 {
		t.Errorf("stored seq %d, want 12", got)
	}
}

// syncBuffer is a bytes.Buffer for a logger written from the flushing
// goroutine and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func TestWriteBehindRetriesFailedFlush(t *testing.T) {
	var logs syncBuffer
	b := setup(t, 5*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)))
	b.db.failNext.Store(3)
	b.save(t, at(b.job, 2), false)
	testsvc.Eventually(t, 5*time.Second, "a failed flush", func() bool { return b.wb.Stats().Failures > 0 })
	b.save(t, at(b.job, 3), false) // newest wins over the one being retried
	testsvc.Eventually(t, 5*time.Second, "the retried flush", func() bool {
		return b.wb.Stats().Pending == 0 && b.db.saves.Load() > 0
	})
	if got := b.stored(t, b.job.JobID); got != 3 {
		t.Errorf("stored seq %d, want 3", got)
	}
	if st := b.wb.Stats(); st.Failures != 3 {
		t.Errorf("Stats = %+v, want 3 failures", st)
	}
	// The recovery line is written just after the flush ends.
	testsvc.Eventually(t, 5*time.Second, "the recovery log line", func() bool { return strings.Contains(logs.String(), "write-behind flush recovered") })
	out := logs.String()
	for _, want := range []string{"write-behind flush failed", "injected failure"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestWriteBehindKeepsFailedDurableSave(t *testing.T) {
	b := setup(t, time.Hour, nil)
	b.db.failNext.Store(1)
	err := b.wb.Save(t.Context(), at(b.job, 2), true)
	if !errors.Is(err, errInjected) {
		t.Fatalf("durable Save = %v, want the injected error", err)
	}
	if got := b.get(t, b.job.JobID); got != 2 {
		t.Errorf("Get = seq %d, want 2", got)
	}
	if err := b.wb.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := b.stored(t, b.job.JobID); got != 2 {
		t.Errorf("stored seq %d, want 2", got)
	}
}

func TestWriteBehindListShowsPending(t *testing.T) {
	b := setup(t, time.Hour, nil)
	other := b.newJob(t, 1)
	b.save(t, at(b.job, 5), false)
	jobs, _, err := b.wb.List(t.Context(), progress.Query{Project: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	seqs := map[string]uint64{}
	for _, j := range jobs {
		seqs[j.JobID] = j.Seq
	}
	if seqs[b.job.JobID] != 5 || seqs[other.JobID] != 1 || len(jobs) != 2 {
		t.Errorf("List seqs = %v, want %s at 5 and %s at 1", seqs, b.job.JobID, other.JobID)
	}
}

// TestWriteBehindReadRacingFlush stages the race a reader loses if it reads
// the database before the memory: the pending snapshot is flushed (and
// leaves memory) just after the database was read.
func TestWriteBehindReadRacingFlush(t *testing.T) {
	b := setup(t, time.Hour, nil)
	read := map[string]func() (uint64, error){
		"Get": func() (uint64, error) {
			s, err := b.wb.Get(t.Context(), b.job.JobID)
			return s.Seq, err
		},
		"List": func() (uint64, error) {
			jobs, _, err := b.wb.List(t.Context(), progress.Query{})
			if err != nil || len(jobs) != 1 {
				return 0, fmt.Errorf("List = %d jobs, %v; want 1 job", len(jobs), err)
			}
			return jobs[0].Seq, nil
		},
	}
	seq := uint64(1)
	for name, fn := range read {
		seq++
		b.save(t, at(b.job, seq), false)
		b.db.afterRead = func() {
			if err := b.wb.Flush(t.Context()); err != nil {
				t.Error(err)
			}
		}
		got, err := fn()
		b.db.afterRead = nil
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got != seq {
			t.Errorf("%s racing a flush = seq %d, want %d", name, got, seq)
		}
	}
}

// TestWriteBehindReadersNeverGoBack checks, while flushes run every
// millisecond, that Get and List never return a seq older than one whose
// Save had returned before the read began.
func TestWriteBehindReadersNeverGoBack(t *testing.T) {
	const last = 1500
	b := setup(t, time.Millisecond, nil)
	var reported atomic.Uint64
	reported.Store(1)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for ctx.Err() == nil {
				floor := reported.Load()
				s, err := b.wb.Get(ctx, b.job.JobID)
				if err == nil && s.Seq < floor {
					t.Errorf("Get = seq %d after seq %d was reported", s.Seq, floor)
				}
				floor = reported.Load()
				jobs, _, err := b.wb.List(ctx, progress.Query{})
				if err == nil && len(jobs) != 1 {
					t.Errorf("List = %d jobs, want 1", len(jobs))
				} else if err == nil && jobs[0].Seq < floor {
					t.Errorf("List = seq %d after seq %d was reported", jobs[0].Seq, floor)
				}
			}
		})
	}
	for seq := uint64(2); seq <= last; seq++ {
		b.save(t, at(b.job, seq), seq%100 == 0)
		reported.Store(seq)
	}
	cancel()
	wg.Wait()
	if err := b.wb.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := b.stored(t, b.job.JobID); got != last {
		t.Errorf("stored seq %d, want %d", got, last)
	}
}

func TestWriteBehindConcurrentSaves(t *testing.T) {
	const jobs, writersPerJob, perWriter = 8, 4, 50
	b := setup(t, 2*time.Millisecond, nil)
	snaps := []progress.Snapshot{b.job}
	for i := 1; i < jobs; i++ {
		snaps = append(snaps, b.newJob(t, i))
	}
	var wg sync.WaitGroup
	for _, j := range snaps {
		for w := range writersPerJob {
			wg.Go(func() {
				for k := range perWriter {
					seq := uint64(2 + w + k*writersPerJob)
					if err := b.wb.Save(t.Context(), at(j, seq), k%10 == 9); err != nil {
						t.Errorf("Save: %v", err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	if err := b.wb.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, j := range snaps {
		if got, want := b.stored(t, j.JobID), uint64(1+writersPerJob*perWriter); got != want {
			t.Errorf("job %s: stored seq %d, want %d", j.JobID, got, want)
		}
	}
}

// TestWriteBehindCloseHonorsContext checks that Close returns when its
// context ends even while a write hangs, stops the goroutine (goleak in
// TestMain checks), and that a later Close still writes everything.
func TestWriteBehindCloseHonorsContext(t *testing.T) {
	b := setup(t, time.Millisecond, nil)
	b.db.hang.Store(true)
	b.save(t, at(b.job, 2), false)
	<-b.db.hung // a background flush is stuck in Save

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := b.wb.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want a deadline error", err)
	}
	b.db.hang.Store(false)
	if err := b.wb.Close(t.Context()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got := b.stored(t, b.job.JobID); got != 2 {
		t.Errorf("stored seq %d, want 2", got)
	}
}

// BenchmarkWriteBehindSave measures one Save: non-durable (a map update
// under a lock, from many goroutines at once) and durable (a one-row
// transaction on SQLite).
func BenchmarkWriteBehindSave(b *testing.B) {
	b.Run("nondurable", func(b *testing.B) {
		bb := benchSetup(b, 1000)
		var next atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				n := next.Add(1)
				j := bb.jobs[n%uint64(len(bb.jobs))]
				j.Seq = n + 1
				if err := bb.wb.Save(b.Context(), j, false); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("durable", func(b *testing.B) {
		bb := benchSetup(b, 1)
		j := bb.jobs[0]
		for n := uint64(2); b.Loop(); n++ {
			j.Seq = n
			if err := bb.wb.Save(b.Context(), j, true); err != nil {
				b.Fatal(err)
			}
		}
	})
}

type benchBundle struct {
	wb   *store.WriteBehind
	jobs []progress.Snapshot
}

func benchSetup(b *testing.B, n int) *benchBundle {
	db, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "progressd.db"))
	if err != nil {
		b.Fatal(err)
	}
	bb := &benchBundle{wb: store.NewWriteBehind(db, 0, nil)}
	b.Cleanup(func() {
		if err := bb.wb.Close(context.Background()); err != nil {
			b.Error(err)
		}
		db.Close()
	})
	for i := range n {
		s, err := progress.New(progress.NewJob{
			ID: fmt.Sprintf("0195522a-0000-7000-8000-%012x", i), Project: "p1", Owner: "alice",
			Stages: []progress.StageSpec{{Name: "fetch"}, {Name: "encode"}, {Name: "upload"}},
		}, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if err := db.Create(b.Context(), s); err != nil {
			b.Fatal(err)
		}
		bb.jobs = append(bb.jobs, s)
	}
	return bb
}
