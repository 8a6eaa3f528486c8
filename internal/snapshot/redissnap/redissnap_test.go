package redissnap_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/snapshot"
	"github.com/progressd/progressd/internal/snapshot/redissnap"
	"github.com/progressd/progressd/internal/snapshot/snapshottest"
	"github.com/progressd/progressd/internal/testsvc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// node opens a store with a client of its own: what one progressd node has.
func node(t testing.TB, url, prefix string, o redissnap.Options) *redissnap.Store {
	t.Helper()
	o.Prefix = prefix
	s := redissnap.New(testsvc.RedisClient(t, url), o)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// setup returns the shared Redis URL and a key prefix for this test only.
func setup(t testing.TB) (url, prefix string) {
	t.Helper()
	url = testsvc.RedisURL(t)
	return url, testsvc.RedisPrefix(t, url)
}

func TestConformance(t *testing.T) {
	snapshottest.Run(t, func(t *testing.T) snapshot.Store {
		url, prefix := setup(t)
		return node(t, url, prefix, redissnap.Options{})
	})
}

func ptr[T any](v T) *T { return &v }

func apply(r progress.Report, at time.Time) func(progress.Snapshot) (progress.Snapshot, error) {
	return func(prev progress.Snapshot) (progress.Snapshot, error) { return progress.Apply(prev, r, at) }
}

// TestUpdateAcrossNodes updates one job from many goroutines on each of two
// stores with clients of their own (two nodes): every update must land
// exactly once, each with its own seq.
func TestUpdateAcrossNodes(t *testing.T) {
	url, prefix := setup(t)
	nodes := []*redissnap.Store{node(t, url, prefix, redissnap.Options{}), node(t, url, prefix, redissnap.Options{})}
	job := snapshottest.Job(t, 1, "p", "alice")
	if err := nodes[0].Put(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	const perNode, workers, each = 2, 8, 40
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seqs []uint64
	)
	for n, st := range nodes {
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					msg := fmt.Sprintf("node %d worker %d update %d", n, w, i)
					got, err := st.Update(t.Context(), job.JobID, apply(progress.Report{Message: &msg}, time.Now()))
					if err != nil {
						t.Errorf("node %d Update: %v", n, err)
						return
					}
					if got.Message != msg {
						t.Errorf("Update returned message %q, want %q", got.Message, msg)
					}
					mu.Lock()
					seqs = append(seqs, got.Seq)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	const total = perNode * workers * each
	got, err := nodes[1].Get(t.Context(), job.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != total+1 {
		t.Fatalf("after %d updates from two nodes seq = %d, want %d: an update was lost", total, got.Seq, total+1)
	}
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != uint64(i+2) {
			t.Fatalf("update results: seq %d at position %d, want %d (two updates were given one seq)", s, i, i+2)
		}
	}
}

// TestLaggingNodeRetries makes another node write between this node's read
// and its write: the compare-and-set must refuse the stale write, fn must be
// applied again to the newer snapshot, and nothing the other node wrote may
// be lost.
func TestLaggingNodeRetries(t *testing.T) {
	url, prefix := setup(t)
	a, b := node(t, url, prefix, redissnap.Options{}), node(t, url, prefix, redissnap.Options{})
	job := snapshottest.Job(t, 1, "p", "alice")
	if err := a.Put(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	calls := 0
	got, err := a.Update(t.Context(), job.JobID, func(prev progress.Snapshot) (progress.Snapshot, error) {
		calls++
		if calls == 1 { // node b reports while node a is busy with prev
			if _, err := b.Update(t.Context(), job.JobID, apply(progress.Report{Stage: ptr("a"), Progress: ptr(0.5)}, time.Now())); err != nil {
				t.Fatal(err)
			}
		}
		return progress.Apply(prev, progress.Report{Message: ptr("from a")}, time.Now())
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 || got.Seq != 3 || got.Message != "from a" || got.Stages[0].Progress != 0.5 {
		t.Fatalf("after a conflict: %d calls, seq %d, message %q, stage a at %v; want 2 calls, seq 3, b's progress kept under a's message",
			calls, got.Seq, got.Message, got.Stages[0].Progress)
	}
}

// TestRememberedSnapshotIsOnlyAGuess: node a remembers what it wrote last;
// after node b moves the job on, a's next update must be built on b's
// snapshot, and a report refused on a's stale copy (current above the old
// total) must be judged again on the fresh one.
func TestRememberedSnapshotIsOnlyAGuess(t *testing.T) {
	url, prefix := setup(t)
	a, b := node(t, url, prefix, redissnap.Options{}), node(t, url, prefix, redissnap.Options{})
	job := snapshottest.Job(t, 1, "p", "alice")
	if err := a.Put(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Update(t.Context(), job.JobID, apply(progress.Report{Current: ptr(10.0), Total: ptr(100.0)}, time.Now())); err != nil {
		t.Fatal(err)
	}
	for _, r := range []progress.Report{{Total: ptr(200.0)}, {Message: ptr("from b")}} {
		if _, err := b.Update(t.Context(), job.JobID, apply(r, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	var seen []uint64
	got, err := a.Update(t.Context(), job.JobID, func(prev progress.Snapshot) (progress.Snapshot, error) {
		seen = append(seen, prev.Seq)
		return progress.Apply(prev, progress.Report{Current: ptr(150.0)}, time.Now())
	})
	if err != nil {
		t.Fatalf("a report valid against the stored snapshot was refused: %v", err)
	}
	if got.Seq != 5 || *got.Current != 150 || *got.Total != 200 || got.Message != "from b" || fmt.Sprint(seen) != "[2 4]" {
		t.Fatalf("got seq %d current %v total %v message %q after seeing seqs %v; want seq 5, 150/200, b's message, seen [2 4]",
			got.Seq, *got.Current, *got.Total, got.Message, seen)
	}
	// A report that is wrong against the stored snapshot too is refused.
	_, err = b.Update(t.Context(), job.JobID, apply(progress.Report{Current: ptr(500.0)}, time.Now()))
	if !errors.Is(err, &progress.Error{Code: progress.CodeInvalidCount}) {
		t.Fatalf("current above total = %v, want invalid_count", err)
	}
}

// TestContentionIsBounded gives up after MaxAttempts conflicts.
func TestContentionIsBounded(t *testing.T) {
	url, prefix := setup(t)
	a := node(t, url, prefix, redissnap.Options{MaxAttempts: 3})
	b := node(t, url, prefix, redissnap.Options{})
	job := snapshottest.Job(t, 1, "p", "alice")
	if err := a.Put(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	calls := 0
	_, err := a.Update(t.Context(), job.JobID, func(prev progress.Snapshot) (progress.Snapshot, error) {
		calls++
		if _, err := b.Update(t.Context(), job.JobID, apply(progress.Report{Message: ptr("b")}, time.Now())); err != nil {
			t.Fatal(err)
		}
		return progress.Apply(prev, progress.Report{Message: ptr("a")}, time.Now())
	})
	if !errors.Is(err, redissnap.ErrContention) || calls != 3 {
		t.Fatalf("Update under constant contention = %v after %d calls, want ErrContention after 3", err, calls)
	}
	got, err := a.Get(t.Context(), job.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 4 || got.Message != "b" {
		t.Fatalf("job at seq %d message %q, want seq 4 from b", got.Seq, got.Message)
	}
}

// TestStalePutNeverOverwrites: a node reloading an old copy (from the
// durable store, or a late Warm) must not replace a newer snapshot.
func TestStalePutNeverOverwrites(t *testing.T) {
	url, prefix := setup(t)
	a, b := node(t, url, prefix, redissnap.Options{}), node(t, url, prefix, redissnap.Options{})
	job := snapshottest.Job(t, 1, "p", "alice")
	if err := a.Put(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	var latest progress.Snapshot
	for i := range 4 {
		var err error
		latest, err = a.Update(t.Context(), job.JobID, apply(progress.Report{Progress: ptr(float64(i+1) / 10)}, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
	}
	stale := latest.Clone()
	stale.Seq = 3
	stale.Message = "stale"
	same := latest.Clone()
	same.Message = "same seq"
	for _, s := range []progress.Snapshot{job, stale, same} {
		if err := b.Put(t.Context(), s); err != nil {
			t.Fatal(err)
		}
		got, err := a.Get(t.Context(), job.JobID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Seq != latest.Seq || got.Message != latest.Message {
			t.Fatalf("Put of seq %d replaced seq %d: got seq %d %q", s.Seq, latest.Seq, got.Seq, got.Message)
		}
	}
	newer := latest.Clone()
	newer.Seq++
	newer.Message = "newer"
	if err := b.Put(t.Context(), newer); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Get(t.Context(), job.JobID); got.Seq != newer.Seq || got.Message != "newer" {
		t.Fatalf("Put of a newer seq was not stored: got seq %d %q", got.Seq, got.Message)
	}
}

// TestETAStateTravels checks that the estimator state crosses nodes: node b
// applies the next report to what node a stored and gets the ETA node a
// would have computed.
func TestETAStateTravels(t *testing.T) {
	url, prefix := setup(t)
	a, b := node(t, url, prefix, redissnap.Options{}), node(t, url, prefix, redissnap.Options{})
	mem := snapshot.NewMemory(snapshot.MemoryOptions{})
	job := snapshottest.Job(t, 1, "p", "alice")
	t0 := job.CreatedAt.Time
	for _, s := range []snapshot.Store{a, mem} {
		if err := s.Put(t.Context(), job); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 6; i++ {
		st := a // alternate nodes: a, b, a, …
		if i%2 == 0 {
			st = b
		}
		at := t0.Add(time.Duration(i) * time.Second)
		r := progress.Report{Progress: ptr(float64(i) / 20)}
		got, err := st.Update(t.Context(), job.JobID, apply(r, at))
		if err != nil {
			t.Fatal(err)
		}
		want, err := mem.Update(t.Context(), job.JobID, apply(r, at))
		if err != nil {
			t.Fatal(err)
		}
		if got.Rate != want.Rate || fmt.Sprint(deref(got.ETASeconds)) != fmt.Sprint(deref(want.ETASeconds)) {
			t.Fatalf("report %d: rate %+v eta %v, want rate %+v eta %v", i, got.Rate, deref(got.ETASeconds), want.Rate, deref(want.ETASeconds))
		}
	}
	got, _ := b.Get(t.Context(), job.JobID)
	if got.ETASeconds == nil || got.Rate.Samples == 0 {
		t.Fatalf("no ETA after 6 reports a second apart: %+v", got.Rate)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestFinishedJobsAreBoundedAndExpire checks the two bounds: each index
// keeps RecentFinished finished jobs, and finished jobs expire.
func TestFinishedJobsAreBoundedAndExpire(t *testing.T) {
	url, prefix := setup(t)
	rdb := testsvc.RedisClient(t, url)
	const ttl = 300 * time.Millisecond
	st := node(t, url, prefix, redissnap.Options{RecentFinished: 3, FinishedTTL: ttl})
	active := snapshottest.Job(t, 100, "p", "alice")
	if err := st.Put(t.Context(), active); err != nil {
		t.Fatal(err)
	}
	done := progress.Succeeded
	for n := 1; n <= 10; n++ {
		j := snapshottest.Job(t, n, "p", "alice")
		if err := st.Put(t.Context(), j); err != nil {
			t.Fatal(err)
		}
		at := j.CreatedAt.Add(time.Duration(n) * time.Second)
		if _, err := st.Update(t.Context(), j.JobID, apply(progress.Report{State: &done}, at)); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range []string{"finished:project:p", "finished:owner:alice"} {
		ids, err := rdb.ZRange(t.Context(), prefix+key, 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(ids) != "[job-000008 job-000009 job-000010]" {
			t.Errorf("%s = %v, want the 3 newest finished", key, ids)
		}
		if d := rdb.PTTL(t.Context(), prefix+key).Val(); d <= 0 || d > ttl {
			t.Errorf("%s TTL %v, want ≤ %v", key, d, ttl)
		}
	}
	if ids := rdb.ZRange(t.Context(), prefix+"active:project:p", 0, -1).Val(); fmt.Sprint(ids) != "[job-000100]" {
		t.Errorf("active:project:p = %v, want only the active job", ids)
	}
	if d := rdb.PTTL(t.Context(), prefix+"job:"+active.JobID).Val(); d != -1 {
		t.Errorf("the active job has TTL %v, want none", d)
	}
	recent, err := st.Recent(t.Context(), progress.Filter{Project: "p"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recent) != 4 || recent[0].JobID != active.JobID || recent[1].JobID != "job-000010" {
		t.Fatalf("Recent = %d jobs starting %v", len(recent), recent)
	}
	err = testsvc.WaitFor(10*time.Second, func() error {
		if _, err := st.Get(t.Context(), "job-000010"); !errors.Is(err, snapshot.ErrNotFound) {
			return fmt.Errorf("finished job still there: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	recent, err = st.Recent(t.Context(), progress.Filter{Owner: "alice"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recent) != 1 || recent[0].JobID != active.JobID {
		t.Fatalf("Recent after expiry = %v, want only the active job", recent)
	}
	if _, err := st.Get(t.Context(), active.JobID); err != nil {
		t.Fatalf("the active job expired: %v", err)
	}
}

// TestUpdateWaitHonoursContext: an Update queued behind another of the same
// job in this process gives up when its context ends.
func TestUpdateWaitHonoursContext(t *testing.T) {
	url, prefix := setup(t)
	st := node(t, url, prefix, redissnap.Options{})
	job := snapshottest.Job(t, 1, "p", "alice")
	if err := st.Put(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	inside, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_, err := st.Update(t.Context(), job.JobID, func(prev progress.Snapshot) (progress.Snapshot, error) {
			close(inside)
			<-release
			return progress.Apply(prev, progress.Report{}, time.Now())
		})
		if err != nil {
			t.Error(err)
		}
	})
	<-inside
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := st.Update(ctx, job.JobID, apply(progress.Report{}, time.Now()))
	close(release)
	wg.Wait()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("queued Update with a canceled context = %v, want context.Canceled", err)
	}
}

func TestCorruptValueSaysWhatHappened(t *testing.T) {
	url, prefix := setup(t)
	rdb := testsvc.RedisClient(t, url)
	st := node(t, url, prefix, redissnap.Options{})
	rdb.HSet(t.Context(), prefix+"job:x", "seq", "1", "fin", "0", "env", "{not json")
	_, err := st.Get(t.Context(), "x")
	if err == nil || errors.Is(err, snapshot.ErrNotFound) {
		t.Fatalf("Get of a corrupt value = %v, want an error", err)
	}
	t.Log(err)
}

func TestClosed(t *testing.T) {
	url, prefix := setup(t)
	st := node(t, url, prefix, redissnap.Options{})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := st.Get(t.Context(), "x"); !errors.Is(err, redissnap.ErrClosed) {
		t.Fatalf("Get after Close = %v, want ErrClosed", err)
	}
}

// BenchmarkUpdate measures one report's trip through the store: when this
// node wrote the job last (one round trip: the compare-and-set), when it
// remembers nothing (read, then compare-and-set), and when two nodes take
// turns, so every guess is wrong (compare-and-set, refused, again).
func BenchmarkUpdate(b *testing.B) {
	for _, bc := range []struct {
		name  string
		cache int
		nodes int
	}{{"remembered", 0, 1}, {"read-first", -1, 1}, {"two-nodes-alternating", 0, 2}} {
		b.Run(bc.name, func(b *testing.B) {
			url, prefix := setup(b)
			nodes := make([]*redissnap.Store, bc.nodes)
			for i := range nodes {
				nodes[i] = node(b, url, prefix, redissnap.Options{CacheSize: bc.cache})
			}
			job := snapshottest.Job(&testing.T{}, 1, "p", "alice")
			if err := nodes[0].Put(b.Context(), job); err != nil {
				b.Fatal(err)
			}
			stage := "b"
			now := time.Now()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				p := float64(i%1000) / 1000
				_, err := nodes[i%len(nodes)].Update(b.Context(), job.JobID, apply(progress.Report{Stage: &stage, Progress: &p}, now))
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUpdateParallel spreads updates over 1,024 jobs from many
// goroutines: the throughput of one node.
func BenchmarkUpdateParallel(b *testing.B) {
	url, prefix := setup(b)
	st := node(b, url, prefix, redissnap.Options{})
	const jobs = 1024
	for n := range jobs {
		if err := st.Put(b.Context(), snapshottest.Job(&testing.T{}, n, "p", "alice")); err != nil {
			b.Fatal(err)
		}
	}
	stage := "b"
	now := time.Now()
	b.ReportAllocs()
	b.SetParallelism(4)
	var next sync.Mutex
	k := 0
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			next.Lock()
			k++
			id := fmt.Sprintf("job-%06d", k%jobs)
			next.Unlock()
			p := float64(i%1000) / 1000
			if _, err := st.Update(b.Context(), id, apply(progress.Report{Stage: &stage, Progress: &p}, now)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
