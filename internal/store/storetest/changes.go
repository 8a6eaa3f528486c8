package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
)

// Changes records what a store's OnChange was called with; its Add is
// the body of a test's OnChange, whatever the transaction type.
type Changes struct {
	mu    sync.Mutex
	count map[string]map[store.ChangeKind]int // job → kind → calls
}

// Add records changes.
func (c *Changes) Add(changes []store.Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.count == nil {
		c.count = map[string]map[store.ChangeKind]int{}
	}
	for _, ch := range changes {
		if c.count[ch.Snapshot.JobID] == nil {
			c.count[ch.Snapshot.JobID] = map[store.ChangeKind]int{}
		}
		c.count[ch.Snapshot.JobID][ch.Kind]++
	}
}

func (c *Changes) get(id string, k store.ChangeKind) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count[id][k]
}

// OneChangePerTransition checks that writes racing through a and b (two
// stores on one database, each with an OnChange adding to rec) report
// each job's end exactly once: per job, a writes a running snapshot and
// then a terminal one, while b writes another terminal one with a higher
// seq, in batches of varied make-up; whichever lands first, the row goes
// to terminal once. A job already terminal written again makes no change,
// nor does a running one.
func OneChangePerTransition(t *testing.T, a, b store.Store, rec *Changes) {
	t.Helper()
	const jobs = 40
	ids := &idGen{}
	base := time.Now()
	var starts, aEnds, bEnds []progress.Snapshot
	for i := range jobs {
		s, err := progress.New(progress.NewJob{ID: ids.next(), Project: "p", Owner: "u"}, base)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Create(t.Context(), s); err != nil {
			t.Fatal(err)
		}
		running := withSeq(s, s.Seq+1)
		running.State = progress.Running
		starts = append(starts, running)
		end := withSeq(s, s.Seq+2)
		end.State, end.FinishedAt = progress.Failed, progress.At(base).Ptr()
		aEnds = append(aEnds, end)
		other := withSeq(s, s.Seq+3+uint64(i%2))
		other.State, other.FinishedAt = progress.Succeeded, progress.At(base).Ptr()
		bEnds = append(bEnds, other)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*jobs)
	wg.Go(func() {
		for i := range jobs {
			if err := a.Save(t.Context(), []progress.Snapshot{starts[i]}); err != nil {
				errs <- err
			}
			if err := a.Save(t.Context(), []progress.Snapshot{aEnds[i]}); err != nil {
				errs <- err
			}
		}
	})
	wg.Go(func() {
		for i := 0; i < jobs; i += 4 { // batches of 4, in reverse order within each
			batch := []progress.Snapshot{bEnds[i+3], bEnds[i+2], bEnds[i+1], bEnds[i]}
			if err := b.Save(t.Context(), batch); err != nil {
				errs <- err
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Save: %v", err)
	}
	// Written again: already terminal, no change.
	if err := b.Save(t.Context(), []progress.Snapshot{withSeq(bEnds[0], bEnds[0].Seq+10)}); err != nil {
		t.Fatal(err)
	}
	var wrong []string
	for i := range jobs {
		if n := rec.get(aEnds[i].JobID, store.Ended); n != 1 {
			wrong = append(wrong, fmt.Sprintf("%s: %d", aEnds[i].JobID, n))
		}
	}
	if len(wrong) > 0 {
		t.Fatalf("jobs whose end was reported other than once: %v", wrong)
	}
}

// OneChangePerStall checks that a job's stall is reported once per stall:
// the write that marks it stalled reports it, another write while it
// stays stalled does not, and after a report clears it the next stall is
// reported again.
func OneChangePerStall(t *testing.T, s store.Store, rec *Changes) {
	t.Helper()
	job, err := progress.New(progress.NewJob{ID: "0195522a-0000-7000-8000-00000000beef", Project: "p", Owner: "u"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Create(t.Context(), job); err != nil {
		t.Fatal(err)
	}
	seq := job.Seq
	save := func(stalled bool) {
		t.Helper()
		seq++
		next := withSeq(job, seq)
		next.State, next.Stalled = progress.Running, stalled
		if err := s.Save(t.Context(), []progress.Snapshot{next}); err != nil {
			t.Fatal(err)
		}
	}
	for i, step := range []struct {
		stalled bool
		want    int // stalls reported so far
	}{{false, 0}, {true, 1}, {true, 1}, {false, 1}, {true, 2}} {
		save(step.stalled)
		if got := rec.get(job.JobID, store.Stalled); got != step.want {
			t.Fatalf("after write %d (stalled=%v): %d stalls reported, want %d", i+1, step.stalled, got, step.want)
		}
	}
	if n := rec.get(job.JobID, store.Ended); n != 0 {
		t.Fatalf("a running job reported %d ends", n)
	}
}
