// Package logstest is the one suite every logs.Store passes.
package logstest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/logs"
	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/testsvc"
)

// Keep is the number of lines per job the stores under test must keep.
const Keep = 5

// Run runs the suite. newStore returns a store keeping Keep lines per job;
// called twice within one test, it returns two stores sharing their data
// (two nodes), where the implementation can.
func Run(t *testing.T, newStore func(t *testing.T) logs.Store) {
	t.Run("UnknownUntilSeeded", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), context.Background()
		if _, err := s.Append(ctx, "j1", lines("a")); !errors.Is(err, logs.ErrUnknown) {
			t.Fatalf("append before seed: %v, want ErrUnknown", err)
		}
		if _, err := s.Read(ctx, "j1", -1, 10); !errors.Is(err, logs.ErrUnknown) {
			t.Fatalf("read before seed: %v, want ErrUnknown", err)
		}
	})
	t.Run("NumbersAndKeeps", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), context.Background()
		seed(t, s, "j1", nil, 0)
		got, err := s.Append(ctx, "j1", lines("a", "b", "c"))
		if err != nil {
			t.Fatal(err)
		}
		if got[0].N != 1 || got[2].N != 3 || got[1].Text != "b" {
			t.Fatalf("numbered %+v, want n 1..3", got)
		}
		if _, err := s.Append(ctx, "j1", lines("d", "e", "f", "g")); err != nil {
			t.Fatal(err)
		}
		p := read(t, s, "j1", -1, 100)
		if p.First != 3 || p.Last != 7 || len(p.Lines) != Keep || p.Lines[0].Text != "c" || p.Lines[4].N != 7 || p.Truncated {
			t.Fatalf("after 7 lines keeping %d: %+v", Keep, p)
		}
		if p.Lines[0].Stream != progress.StreamLog || p.Lines[0].Stage != "s" || p.Lines[0].T.IsZero() {
			t.Fatalf("fields lost: %+v", p.Lines[0])
		}
		if p := read(t, s, "j1", 1, 100); !p.Truncated || p.Lines[0].N != 3 {
			t.Fatalf("after 1 (dropped): %+v, want truncated from 3", p)
		}
		if p := read(t, s, "j1", 2, 100); p.Truncated || p.Lines[0].N != 3 {
			t.Fatalf("after 2: %+v, want 3.. not truncated", p)
		}
		if p := read(t, s, "j1", 4, 2); len(p.Lines) != 2 || p.Lines[0].N != 5 || p.Lines[1].N != 6 {
			t.Fatalf("after 4 limit 2: %+v", p)
		}
		if p := read(t, s, "j1", 7, 10); len(p.Lines) != 0 || p.Last != 7 {
			t.Fatalf("after the last: %+v", p)
		}
		if p := read(t, s, "j1", 70, 10); len(p.Lines) != 0 || p.Last != 7 {
			t.Fatalf("after beyond the last: %+v", p)
		}
	})
	t.Run("SeedContinuesAndNeverOverwrites", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), context.Background()
		old := lines("x", "y")
		old[0].N, old[1].N = 41, 42
		seed(t, s, "j1", old, 42)
		seed(t, s, "j1", nil, 0) // a ring exists: kept
		got, err := s.Append(ctx, "j1", lines("z"))
		if err != nil {
			t.Fatal(err)
		}
		if got[0].N != 43 {
			t.Fatalf("n after seed at 42: %d", got[0].N)
		}
		if p := read(t, s, "j1", -1, 10); p.First != 41 || len(p.Lines) != 3 || p.Lines[1].Text != "y" {
			t.Fatalf("seeded ring: %+v", p)
		}
	})
	t.Run("NoGapsUnderConcurrency", func(t *testing.T) {
		t.Parallel()
		a, b := newStore(t), newStore(t)
		ctx := context.Background()
		seed(t, a, "j1", nil, 0)
		seed(t, b, "j1", nil, 0)
		const writers, each = 8, 25
		seen := make(chan int64, writers*each*2)
		var wg sync.WaitGroup
		for w := range writers {
			s := []logs.Store{a, b}[w%2]
			wg.Go(func() {
				for range each {
					got, err := s.Append(ctx, "j1", lines("p", "q"))
					if err != nil {
						t.Error(err)
						return
					}
					for _, l := range got {
						seen <- l.N
					}
				}
			})
		}
		wg.Wait()
		close(seen)
		have := map[int64]bool{}
		for n := range seen {
			if have[n] {
				t.Fatalf("n %d given twice", n)
			}
			have[n] = true
		}
		for n := int64(1); n <= writers*each*2; n++ {
			if !have[n] {
				t.Fatalf("gap: n %d never given (of %d)", n, writers*each*2)
			}
		}
	})
	t.Run("Drop", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), context.Background()
		seed(t, s, "j1", nil, 0)
		seed(t, s, "j2", nil, 0)
		if err := s.Drop(ctx, "j1"); err != nil {
			t.Fatal(err)
		}
		testsvc.Eventually(t, 10*time.Second, "the dropped job's lines to go", func() bool {
			_, err := s.Read(ctx, "j1", -1, 1)
			return errors.Is(err, logs.ErrUnknown)
		})
		if _, err := s.Read(ctx, "j2", -1, 1); err != nil {
			t.Fatalf("another job dropped too: %v", err)
		}
	})
}

func lines(texts ...string) []progress.LogLine {
	out := make([]progress.LogLine, len(texts))
	for i, x := range texts {
		out[i] = progress.LogLine{T: progress.At(time.Unix(1700000000, 0)), Stream: progress.StreamLog, Stage: "s", Text: x}
	}
	return out
}

func seed(t *testing.T, s logs.Store, job string, l []progress.LogLine, last int64) {
	t.Helper()
	if err := s.Seed(context.Background(), job, l, last); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, s logs.Store, job string, after int64, limit int) progress.LogPage {
	t.Helper()
	p, err := s.Read(context.Background(), job, after, limit)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
