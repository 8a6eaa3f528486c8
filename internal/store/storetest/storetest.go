// Package storetest is the one conformance suite every store.Store
// implementation runs, so SQLite and PostgreSQL cannot drift apart in what
// the rest of progressd relies on: seq-guarded saves, List order and
// pagination, the sentinel errors, idempotency keys, and data surviving a
// restart.
//
// An implementation's test calls Run with a Harness:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Harness{
//			NewDB: func(t *testing.T) func(t *testing.T) store.Store {
//				path := filepath.Join(t.TempDir(), "progressd.db")
//				return func(t *testing.T) store.Store {
//					s, err := sqlite.Open(t.Context(), path)
//					if err != nil {
//						t.Fatal(err)
//					}
//					return s
//				}
//			},
//		})
//	}
//
// Every subtest gets its own database and runs in parallel with the others.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
)

// Harness tells Run how to get stores of the implementation under test.
type Harness struct {
	// NewDB creates an empty database for one test and returns a function
	// that opens a Store on it. The suite calls open again after closing
	// the previous Store of that database and expects to see everything
	// that Store wrote: that is the restart test. The suite closes every
	// Store it opens.
	NewDB func(t *testing.T) (open func(t *testing.T) store.Store)
}

// Run runs the conformance suite against the implementation h opens.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b *bundle)
	}{
		{"CreateGetRoundTrip", testCreateGetRoundTrip},
		{"CreateExists", testCreateExists},
		{"GetNotFound", testGetNotFound},
		{"SaveOnlyHigherSeq", testSaveOnlyHigherSeq},
		{"SaveSkipsUnknownJob", testSaveSkipsUnknownJob},
		{"SaveBatch", testSaveBatch},
		{"SaveSameJobTwiceInBatch", testSaveSameJobTwiceInBatch},
		{"SaveUpdatesListFilters", testSaveUpdatesListFilters},
		{"ListNewestFirstAndFilters", testListFilters},
		{"ListPagination", testListPagination},
		{"ListLimits", testListLimits},
		{"ConcurrentSave", testConcurrentSave},
		{"Ping", testPing},
		{"Reopen", testReopen},
		{"CloseTwice", testCloseTwice},
		{"CanceledContext", testCanceledContext},
	}
	for _, tc := range slices.Concat(tests, groupTests, keyTests, logTests, purgeTests, lapseTests) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, setup(t, h))
		})
	}
}

// bundle is what every test starts with: an open store on a fresh database
// and the means to open that database again.
type bundle struct {
	store store.Store
	open  func(t *testing.T) store.Store
	ids   *idGen
	base  time.Time
}

func setup(t *testing.T, h Harness) *bundle {
	t.Helper()
	open := h.NewDB(t)
	b := &bundle{
		open: func(t *testing.T) store.Store {
			t.Helper()
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			return s
		},
		ids:  &idGen{},
		base: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
	}
	b.store = b.open(t)
	return b
}

// idGen makes job ids that sort in the order they were made, shaped like
// the UUIDv7 ids the server uses.
type idGen struct{ n atomic.Uint64 }

func (g *idGen) next() string {
	return fmt.Sprintf("0195522a-0000-7000-8000-%012x", g.n.Add(1))
}

// job returns a realistic new snapshot (the one progress.New makes) with
// the next id. Its creation time is scrambled so that a store sorting by
// anything but the id fails the List tests.
func (b *bundle) job(t *testing.T, project, owner string, stages ...string) progress.Snapshot {
	t.Helper()
	specs := make([]progress.StageSpec, len(stages))
	for i, name := range stages {
		specs[i] = progress.StageSpec{Name: name}
	}
	id := b.ids.next()
	created := b.base.Add(time.Duration(rand.IntN(1_000_000)) * time.Millisecond)
	s, err := progress.New(progress.NewJob{ID: id, Project: project, Owner: owner, Stages: specs}, created)
	if err != nil {
		t.Fatalf("progress.New: %v", err)
	}
	return s
}

func (b *bundle) create(t *testing.T, snaps ...progress.Snapshot) {
	t.Helper()
	for _, s := range snaps {
		if err := b.store.Create(t.Context(), s); err != nil {
			t.Fatalf("Create %s: %v", s.JobID, err)
		}
	}
}

func (b *bundle) save(t *testing.T, snaps ...progress.Snapshot) {
	t.Helper()
	if err := b.store.Save(t.Context(), snaps); err != nil {
		t.Fatalf("Save: %v", err)
	}
}

func (b *bundle) get(t *testing.T, id string) progress.Snapshot {
	t.Helper()
	s, err := b.store.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get %s: %v", id, err)
	}
	return s
}

// report returns s after one progress report at the given fraction: the
// next seq, the state running, as the server would make it.
func report(t *testing.T, s progress.Snapshot, fraction float64, msg string) progress.Snapshot {
	t.Helper()
	next, err := progress.Apply(s, progress.Report{Progress: &fraction, Message: &msg}, s.UpdatedAt.Add(time.Second))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return next
}

// withSeq returns s with seq n and a message naming it, so a test can tell
// which write won.
func withSeq(s progress.Snapshot, n uint64) progress.Snapshot {
	s = s.Clone()
	s.Seq = n
	s.Message = fmt.Sprintf("seq %d", n)
	return s
}

// Normalize returns s in the form a store gives it back: without the ETA
// estimator state (Rate is not part of the stored shape), with empty Params
// as nil (they are omitted when empty), Stages never nil, and every time at
// millisecond precision in UTC.
func Normalize(s progress.Snapshot) progress.Snapshot {
	s = s.Clone() // also turns nil Stages into an empty slice
	s.Rate = progress.Rate{}
	if len(s.Params) == 0 {
		s.Params = nil
	}
	s.CreatedAt = progress.At(s.CreatedAt.Time)
	s.UpdatedAt = progress.At(s.UpdatedAt.Time)
	for _, p := range []**progress.Time{&s.StartedAt, &s.FinishedAt} {
		if *p != nil {
			*p = progress.At((*p).Time).Ptr()
		}
	}
	return s
}

// Equal fails t unless got and want are the same snapshot once normalized.
func Equal(t *testing.T, got, want progress.Snapshot) {
	t.Helper()
	g, w := Normalize(got), Normalize(want)
	if !reflect.DeepEqual(g, w) {
		gj, _ := json.MarshalIndent(g, "", "  ")
		wj, _ := json.MarshalIndent(w, "", "  ")
		t.Fatalf("snapshot differs\n got: %s\nwant: %s", gj, wj)
	}
}

func ptr[T any](v T) *T { return &v }

func testCreateGetRoundTrip(t *testing.T, b *bundle) {
	at := func(ms int) progress.Time { return progress.At(b.base.Add(time.Duration(ms) * time.Millisecond)) }
	full := progress.Snapshot{
		JobID:      b.ids.next(),
		Project:    "p1",
		Owner:      "alice",
		Pipeline:   "thumbnail",
		Params:     map[string]string{"input": "a b/ç.mp4", "quality": "\"high\"\n"},
		State:      progress.Failed,
		Progress:   0.4200000000000001,
		Stage:      "encode",
		Stages:     []progress.Stage{{Name: "fetch", Weight: 1, State: progress.Succeeded, Progress: 1}, {Name: "encode", Weight: 8.5, State: progress.Failed, Progress: 1.0 / 3}},
		Current:    ptr(420.0),
		Total:      ptr(1200.0),
		Message:    "frame 420/1200 — ünïcödé ✓",
		ETASeconds: ptr(12.5),
		Seq:        18,
		CreatedAt:  at(1),
		StartedAt:  at(1500).Ptr(),
		UpdatedAt:  at(10123),
		FinishedAt: at(10999).Ptr(),
		Error:      ptr("encode: exit status 1: boom"),
		Rate:       progress.Rate{PerSecond: 0.1, Samples: 3, SampleAt: at(10000), SampleProgress: 0.4},
	}
	zeroPtrs := progress.Snapshot{
		JobID:      b.ids.next(),
		Project:    "p1",
		Owner:      "alice",
		State:      progress.Running,
		Stages:     []progress.Stage{},
		Current:    ptr(0.0),
		Total:      ptr(0.0),
		ETASeconds: ptr(0.0),
		Seq:        2,
		CreatedAt:  at(2),
		StartedAt:  at(2).Ptr(),
		UpdatedAt:  at(2),
		Error:      ptr(""),
	}
	nilStages := b.job(t, "p2", "bob")
	nilStages.Stages = nil
	tests := []struct {
		name string
		snap progress.Snapshot
	}{
		{"new", b.job(t, "p1", "alice")},
		{"new with stages", b.job(t, "p1", "alice", "fetch", "encode", "upload")},
		{"running after a report", report(t, b.job(t, "p1", "alice", "a", "b"), 0.25, "a quarter")},
		{"every field set", full},
		{"zero values behind pointers stay set", zeroPtrs},
		{"nil stages", nilStages},
	}
	for _, tc := range tests {
		b.create(t, tc.snap)
		got := b.get(t, tc.snap.JobID)
		t.Run(tc.name, func(t *testing.T) { Equal(t, got, tc.snap) })
	}
	if got := b.get(t, nilStages.JobID); got.Stages == nil {
		t.Errorf("Get returned nil Stages; want an empty slice so the snapshot encodes \"stages\": []")
	}
}

func testCreateExists(t *testing.T, b *bundle) {
	s := b.job(t, "p1", "alice")
	b.create(t, s)
	dup := withSeq(s, 9)
	err := b.store.Create(t.Context(), dup)
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("second Create = %v, want ErrExists", err)
	}
	Equal(t, b.get(t, s.JobID), s)
}

func testGetNotFound(t *testing.T, b *bundle) {
	b.create(t, b.job(t, "p1", "alice"))
	_, err := b.store.Get(t.Context(), b.ids.next())
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of an unknown id = %v, want ErrNotFound", err)
	}
}

func testSaveOnlyHigherSeq(t *testing.T, b *bundle) {
	s := b.job(t, "p1", "alice")
	b.create(t, s)
	b.save(t, withSeq(s, 3))
	Equal(t, b.get(t, s.JobID), withSeq(s, 3))

	b.save(t, withSeq(s, 2)) // stale
	Equal(t, b.get(t, s.JobID), withSeq(s, 3))

	same := withSeq(s, 3)
	same.Message = "same seq, other content"
	b.save(t, same) // equal seq is not newer
	Equal(t, b.get(t, s.JobID), withSeq(s, 3))

	b.save(t, withSeq(s, 4))
	Equal(t, b.get(t, s.JobID), withSeq(s, 4))
}

func testSaveSkipsUnknownJob(t *testing.T, b *bundle) {
	known := b.job(t, "p1", "alice")
	b.create(t, known)
	unknown := b.job(t, "p1", "alice")
	b.save(t, withSeq(unknown, 5), withSeq(known, 5))
	Equal(t, b.get(t, known.JobID), withSeq(known, 5))
	if _, err := b.store.Get(t.Context(), unknown.JobID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Save created job %s: Get = %v, want ErrNotFound", unknown.JobID, err)
	}
	b.save(t) // an empty batch is fine
}

func testSaveBatch(t *testing.T, b *bundle) {
	const n = 500
	jobs := make([]progress.Snapshot, n)
	for i := range jobs {
		jobs[i] = b.job(t, fmt.Sprintf("p%d", i%3), "alice", "x", "y")
		b.create(t, jobs[i])
	}
	next := make([]progress.Snapshot, n)
	for i, s := range jobs {
		next[i] = report(t, s, float64(i)/n, fmt.Sprintf("job %d", i))
	}
	b.save(t, next...)
	for _, want := range next {
		Equal(t, b.get(t, want.JobID), want)
	}
}

func testSaveSameJobTwiceInBatch(t *testing.T, b *bundle) {
	up, down := b.job(t, "p1", "alice"), b.job(t, "p1", "alice")
	b.create(t, up, down)
	b.save(t, withSeq(up, 4), withSeq(up, 5), withSeq(down, 5), withSeq(down, 4))
	Equal(t, b.get(t, up.JobID), withSeq(up, 5))
	Equal(t, b.get(t, down.JobID), withSeq(down, 5))
}

// testSaveUpdatesListFilters checks that List filters on the saved state,
// not on the state at creation.
func testSaveUpdatesListFilters(t *testing.T, b *bundle) {
	s := b.job(t, "p1", "alice")
	b.create(t, s)
	done, err := progress.Apply(s, progress.Report{State: ptr(progress.Succeeded)}, s.CreatedAt.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	b.save(t, done)
	for _, tc := range []struct {
		state progress.State
		want  int
	}{{progress.Queued, 0}, {progress.Succeeded, 1}} {
		jobs, _, err := b.store.List(t.Context(), progress.Query{States: []progress.State{tc.state}})
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) != tc.want {
			t.Errorf("List state=%s returned %d jobs, want %d", tc.state, len(jobs), tc.want)
		}
	}
	Equal(t, b.get(t, s.JobID), done)
}

// fixture creates jobs over three projects, two owners and several states,
// in shuffled order so that insertion order cannot pass for id order.
func fixture(t *testing.T, b *bundle, n int) []progress.Snapshot {
	t.Helper()
	owners := []string{"alice", "bob"}
	jobs := make([]progress.Snapshot, n)
	for i := range jobs {
		s := b.job(t, fmt.Sprintf("p%d", i%3), owners[(i/3)%2])
		switch i % 5 {
		case 1, 2:
			s = report(t, s, 0.5, "half")
		case 3:
			s, _ = progress.Apply(s, progress.Report{State: ptr(progress.Succeeded)}, s.CreatedAt.Add(time.Second))
		case 4:
			s, _ = progress.Apply(s, progress.Report{Error: ptr("boom")}, s.CreatedAt.Add(time.Second))
		}
		jobs[i] = s
	}
	shuffled := slices.Clone(jobs)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	b.create(t, shuffled...)
	return jobs
}

// expect returns the ids of jobs matching q (ignoring paging), newest first.
func expect(jobs []progress.Snapshot, q progress.Query) []string {
	var ids []string
	for _, s := range jobs {
		if (q.Project == "" || s.Project == q.Project) &&
			(q.Owner == "" || s.Owner == q.Owner) &&
			(len(q.States) == 0 || slices.Contains(q.States, s.State)) {
			ids = append(ids, s.JobID)
		}
	}
	slices.Sort(ids)
	slices.Reverse(ids)
	return ids
}

func jobIDs(jobs []progress.Snapshot) []string {
	out := make([]string, len(jobs))
	for i, s := range jobs {
		out[i] = s.JobID
	}
	return out
}

func testListFilters(t *testing.T, b *bundle) {
	jobs := fixture(t, b, progress.DefaultLimit-5) // one page: pagination is tested below
	byID := map[string]progress.Snapshot{}
	for _, s := range jobs {
		byID[s.JobID] = s
	}
	tests := []struct {
		name string
		q    progress.Query
	}{
		{"all", progress.Query{}},
		{"project", progress.Query{Project: "p1"}},
		{"owner", progress.Query{Owner: "bob"}},
		{"project and owner", progress.Query{Project: "p2", Owner: "alice"}},
		{"one state", progress.Query{States: []progress.State{progress.Running}}},
		{"several states", progress.Query{States: []progress.State{progress.Succeeded, progress.Failed}}},
		{"project and state", progress.Query{Project: "p0", States: []progress.State{progress.Queued}}},
		{"everything", progress.Query{Project: "p1", Owner: "alice", States: []progress.State{progress.Queued, progress.Running}}},
		{"unknown project", progress.Query{Project: "nope"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, next, err := b.store.List(t.Context(), tc.q)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if want := expect(jobs, tc.q); !slices.Equal(jobIDs(got), want) {
				t.Fatalf("List %+v\n got %v\nwant %v", tc.q, jobIDs(got), want)
			}
			if next != "" {
				t.Errorf("List of one partial page returned next %q, want \"\"", next)
			}
			for _, s := range got {
				Equal(t, s, byID[s.JobID])
			}
		})
	}
}

// pages walks every page of q and returns the ids in order, failing on a
// page longer than the limit or a cursor that does not advance.
func pages(t *testing.T, s store.Store, q progress.Query) (all []string, n int) {
	t.Helper()
	for {
		got, next, err := s.List(t.Context(), q)
		if err != nil {
			t.Fatalf("List %+v: %v", q, err)
		}
		n++
		if len(got) > q.PageSize() {
			t.Fatalf("page %d has %d jobs, limit %d", n, len(got), q.PageSize())
		}
		all = append(all, jobIDs(got)...)
		if next == "" {
			return all, n
		}
		if next == q.Cursor || n > 1000 {
			t.Fatalf("cursor does not advance: %q", next)
		}
		q.Cursor = next
	}
}

func testListPagination(t *testing.T, b *bundle) {
	jobs := fixture(t, b, 250)
	tests := []struct {
		name  string
		q     progress.Query
		pages int
	}{
		{"all, partial last page", progress.Query{Limit: 100}, 3},
		{"all, full last page", progress.Query{Limit: 50}, 5},
		{"filtered", progress.Query{Project: "p1", Limit: 7}, 12},
		{"filtered by state", progress.Query{States: []progress.State{progress.Running, progress.Queued}, Limit: 40}, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, n := pages(t, b.store, tc.q)
			if want := expect(jobs, tc.q); !slices.Equal(got, want) {
				t.Fatalf("pages of %+v: got %d ids, want %d (duplicates or gaps)\n got %v\nwant %v", tc.q, len(got), len(want), got, want)
			}
			if n != tc.pages {
				t.Errorf("got %d pages, want %d", n, tc.pages)
			}
		})
	}
}

func testListLimits(t *testing.T, b *bundle) {
	fixture(t, b, progress.MaxLimit+20)
	for _, tc := range []struct {
		limit, want int
	}{
		{0, progress.DefaultLimit},
		{-1, progress.DefaultLimit},
		{1, 1},
		{progress.MaxLimit, progress.MaxLimit},
		{progress.MaxLimit + 1, progress.MaxLimit},
		{1 << 30, progress.MaxLimit},
	} {
		got, next, err := b.store.List(t.Context(), progress.Query{Limit: tc.limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tc.want || next == "" {
			t.Errorf("List limit %d: %d jobs, next %q; want %d jobs and a next cursor", tc.limit, len(got), next, tc.want)
		}
	}
}

// testConcurrentSave saves increasing seqs of a few jobs from many
// goroutines at once, while a reader checks that no job's seq ever goes
// back; every job must end at its highest seq.
func testConcurrentSave(t *testing.T, b *bundle) {
	const writers, perWriter = 16, 20
	jobs := []progress.Snapshot{b.job(t, "p1", "alice"), b.job(t, "p1", "bob"), b.job(t, "p2", "alice")}
	b.create(t, jobs...)

	ctx, cancel := context.WithCancel(t.Context())
	var readers sync.WaitGroup
	readers.Go(func() {
		last := map[string]uint64{}
		for ctx.Err() == nil {
			for _, j := range jobs {
				s, err := b.store.Get(ctx, j.JobID)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("Get: %v", err)
					}
					return
				}
				if s.Seq < last[j.JobID] {
					t.Errorf("job %s went back from seq %d to %d", j.JobID, last[j.JobID], s.Seq)
				}
				last[j.JobID] = s.Seq
			}
		}
	})

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for k := range perWriter {
				seq := uint64(2 + w + k*writers) // each writer's seqs increase; together 2…writers*perWriter+1
				batch := make([]progress.Snapshot, len(jobs))
				for i, j := range jobs {
					batch[i] = withSeq(j, seq)
				}
				if err := b.store.Save(t.Context(), batch); err != nil {
					t.Errorf("Save: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	cancel()
	readers.Wait()
	for _, j := range jobs {
		Equal(t, b.get(t, j.JobID), withSeq(j, writers*perWriter+1))
	}
}

func testPing(t *testing.T, b *bundle) {
	if err := b.store.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testReopen(t *testing.T, b *bundle) {
	jobs := fixture(t, b, 30)
	saved := report(t, jobs[0], 0.75, "before restart")
	saved.Seq = 50
	b.save(t, saved)
	jobs[0] = saved
	if err := b.store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	b.store = b.open(t)
	for _, want := range jobs {
		Equal(t, b.get(t, want.JobID), want)
	}
	got, _, err := b.store.List(t.Context(), progress.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if want := expect(jobs, progress.Query{}); !slices.Equal(jobIDs(got), want) {
		t.Fatalf("List after reopen\n got %v\nwant %v", jobIDs(got), want)
	}
	b.save(t, withSeq(saved, 51))
	Equal(t, b.get(t, saved.JobID), withSeq(saved, 51))
}

func testCloseTwice(t *testing.T, b *bundle) {
	if err := b.store.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := b.store.Close(); err != nil {
		t.Fatalf("second Close: %v, want nil", err)
	}
}

func testCanceledContext(t *testing.T, b *bundle) {
	s := b.job(t, "p1", "alice")
	b.create(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	calls := map[string]func() error{
		"Create": func() error { return b.store.Create(ctx, b.job(t, "p1", "alice")) },
		"Save":   func() error { return b.store.Save(ctx, []progress.Snapshot{withSeq(s, 2)}) },
		"Get":    func() error { _, err := b.store.Get(ctx, s.JobID); return err },
		"List":   func() error { _, _, err := b.store.List(ctx, progress.Query{}); return err },
		"Ping":   func() error { return b.store.Ping(ctx) },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context = %v, want an error wrapping context.Canceled", name, err)
		}
	}
	Equal(t, b.get(t, s.JobID), s)
}
