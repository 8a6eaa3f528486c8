package progress

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestNewRejectsBadLimits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stall *float64
		aband *float64
		pipe  string
		code  string
	}{
		{"stall 0", fp(0), nil, "", CodeInvalidStallAfter},
		{"stall -1", fp(-1), nil, "", CodeInvalidStallAfter},
		{"stall NaN", fp(math.NaN()), nil, "", CodeInvalidStallAfter},
		{"stall +Inf", fp(math.Inf(1)), nil, "", CodeInvalidStallAfter},
		{"stall over a year", fp(MaxLimitSeconds + 1), nil, "", CodeInvalidStallAfter},
		{"abandon 0", nil, fp(0), "", CodeInvalidAbandonAfter},
		{"abandon -1", nil, fp(-1), "", CodeInvalidAbandonAfter},
		{"abandon NaN", nil, fp(math.NaN()), "", CodeInvalidAbandonAfter},
		{"abandon on a pipeline job", nil, fp(60), "demo", CodeInvalidAbandonAfter},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(NewJob{ID: "j", Project: "p", Owner: "o", Pipeline: tc.pipe, StallAfter: tc.stall, AbandonAfter: tc.aband}, t0)
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != tc.code {
				t.Fatalf("got %v, want code %s", err, tc.code)
			}
		})
	}
}

func TestStallUntilNextReport(t *testing.T) {
	s, err := New(NewJob{ID: "j", Project: "p", Owner: "o", StallAfter: fp(30)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Stall(s, t0.Add(time.Hour)); !errors.Is(err, ErrUnchanged) {
		t.Fatalf("a queued job stalled: %v", err)
	}
	s = applyAll(t, s, Report{Progress: fp(0.2)}) // running, last report at t0+1s
	if _, err := Stall(s, t0.Add(30*time.Second)); !errors.Is(err, ErrUnchanged) {
		t.Fatalf("stalled before its time: %v", err)
	}
	stalled, err := Stall(s, t0.Add(31*time.Second))
	if err != nil || !stalled.Stalled || stalled.Seq != s.Seq+1 || !stalled.UpdatedAt.Equal(s.UpdatedAt.Time) {
		t.Fatalf("stall: %v %+v", err, stalled)
	}
	if _, err := Stall(stalled, t0.Add(time.Hour)); !errors.Is(err, ErrUnchanged) {
		t.Fatalf("stalled twice: %v", err)
	}
	cleared, err := Apply(stalled, Report{Message: sp("alive")}, t0.Add(40*time.Second))
	if err != nil || cleared.Stalled {
		t.Fatalf("the next report did not clear the stall: %v %+v", err, cleared)
	}
	if due, ok := cleared.StallDue(); !ok || !due.Equal(t0.Add(70*time.Second).Truncate(time.Millisecond)) {
		t.Fatalf("next stall due %v %v, want 30 s after the report", due, ok)
	}
}

func TestAbandon(t *testing.T) {
	s, err := New(NewJob{ID: "j", Project: "p", Owner: "o", AbandonAfter: fp(90)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Abandon(s, t0.Add(89*time.Second), 24*time.Hour); !errors.Is(err, ErrUnchanged) {
		t.Fatalf("abandoned early: %v", err)
	}
	// A queued job counts from its creation; its own limit beats the default.
	done, err := Abandon(s, t0.Add(91*time.Second), 24*time.Hour)
	if err != nil || done.State != Failed || done.Error == nil || *done.Error != "no report for 1m30s" {
		t.Fatalf("abandon: %v %+v", err, done)
	}
	if !done.LastReport().Equal(s.LastReport().Time) {
		t.Fatalf("abandoning moved the last report to %s", done.LastReport())
	}
	if _, err := Abandon(done, t0.Add(time.Hour), time.Second); !errors.Is(err, ErrJobFinished) {
		t.Fatalf("abandoned twice: %v", err)
	}
	p := newJob(t) // a pipeline job: its timeouts rule
	if _, err := Abandon(p, t0.Add(1000*time.Hour), time.Second); !errors.Is(err, ErrUnchanged) {
		t.Fatalf("a pipeline job was abandoned: %v", err)
	}
	d, _ := New(NewJob{ID: "j", Project: "p", Owner: "o"}, t0)
	if _, err := Abandon(d, t0.Add(1000*time.Hour), 0); !errors.Is(err, ErrUnchanged) {
		t.Fatalf("abandoned with the default off: %v", err)
	}
	if got, err := Abandon(d, t0.Add(25*time.Hour), 24*time.Hour); err != nil || *got.Error != "no report for 24h" {
		t.Fatalf("default limit: %v %v", err, got.Error)
	}
}

func TestChildrenAreNotTheParentsReport(t *testing.T) {
	parent, err := New(NewJob{ID: "p", Project: "p", Owner: "o", ExpectedChildren: 2, StallAfter: fp(10)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	next, err := ApplyChildren(parent, ChildUpdate{Totals: &ChildTotals{Version: 1, Counts: Children{Total: 1, Running: 1}, WeightSum: 1}, Live: fp(0.5)}, t0.Add(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !next.LastReport().Equal(parent.CreatedAt.Time) || next.UpdatedAt.Equal(parent.UpdatedAt.Time) {
		t.Fatalf("last report %s, updated %s: a child's change is no report of the parent's", next.LastReport(), next.UpdatedAt)
	}
	if _, err := Stall(next, t0.Add(11*time.Second)); err != nil {
		t.Fatalf("a parent silent itself for 11 s did not stall: %v", err)
	}
}

func TestAttemptsAndRetry(t *testing.T) {
	s, err := New(NewJob{ID: "j", Project: "p", Owner: "o", Pipeline: "x", Stages: []StageSpec{st("a"), st("b")}, MaxAttempts: 3}, t0)
	if err != nil || s.Attempt != 1 || s.MaxAttempts != 3 {
		t.Fatalf("new: %v attempt %d of %d", err, s.Attempt, s.MaxAttempts)
	}
	retryAt := t0.Add(time.Minute)
	s = applyAll(t, s,
		Report{Stage: sp("a"), Attempt: 1, MaxAttempts: 3},
		Report{Stage: sp("b"), Progress: fp(0.5)},
		Report{Retry: &Retry{At: retryAt, Error: "stage b: exit status 1"}},
	)
	if s.State != Running || s.RetryAt == nil || !s.RetryAt.Equal(retryAt.Truncate(time.Millisecond)) || s.Error == nil || *s.Error != "stage b: exit status 1" {
		t.Fatalf("waiting: %+v", s)
	}
	p := s.Progress
	s = applyAll(t, s, Report{Stage: sp("a"), Attempt: 2, MaxAttempts: 3, Progress: fp(0.1)})
	if s.Attempt != 2 || s.RetryAt != nil || s.Error != nil || s.Progress != p || s.Stage != "b" {
		t.Fatalf("attempt 2: %+v (the bar must stay at %v on stage b)", s, p)
	}
	if _, err := Apply(s, Report{State: stp(Failed), Retry: &Retry{At: retryAt}}, t0); err == nil {
		t.Fatal("a retry with a state was accepted")
	}
}
