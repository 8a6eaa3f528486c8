package progress

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNewRefusesBadGroupFields(t *testing.T) {
	w0, wneg, w1 := 0.0, -1.0, 1.0
	many := make([]string, 17)
	for i := range many {
		many[i] = "t" + strings.Repeat("x", i)
	}
	child := func(j NewJob) NewJob { j.ParentID, j.RootID = "p", "p"; return j }
	for _, tc := range []struct {
		name string
		job  NewJob
		code string
	}{
		{"17 tags", NewJob{Tags: many}, CodeInvalidTag},
		{"a tag with a space", NewJob{Tags: []string{"a b"}}, CodeInvalidTag},
		{"an empty tag", NewJob{Tags: []string{""}}, CodeInvalidTag},
		{"a 65-byte tag", NewJob{Tags: []string{strings.Repeat("a", 65)}}, CodeInvalidTag},
		{"a tag given twice", NewJob{Tags: []string{"a", "a"}}, CodeInvalidTag},
		{"a tag with a slash", NewJob{Tags: []string{"a/b"}}, CodeInvalidTag},
		{"a name of 201 characters", NewJob{Name: strings.Repeat("é", 201)}, CodeInvalidName},
		{"a name that is not UTF-8", NewJob{Name: "\xff"}, CodeInvalidName},
		{"expected_children -1", NewJob{ExpectedChildren: -1}, CodeInvalidExpected},
		{"weight without a parent", NewJob{Weight: &w1}, CodeInvalidWeight},
		{"weight 0", child(NewJob{Weight: &w0}), CodeInvalidWeight},
		{"weight -1", child(NewJob{Weight: &wneg}), CodeInvalidWeight},
		{"two children stages", NewJob{Stages: []StageSpec{{Name: "a", Children: true}, {Name: "b", Children: true}}}, CodeInvalidJob},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := tc.job
			j.ID, j.Project, j.Owner = "j", "p", "o"
			_, err := New(j, t0)
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != tc.code {
				t.Fatalf("New = %v, want code %s", err, tc.code)
			}
		})
	}
	// The limits themselves are allowed.
	ok := make([]string, 16)
	for i := range ok {
		ok[i] = "Az09:_.-" + strings.Repeat("x", i)
	}
	s, err := New(NewJob{ID: "j", Project: "p", Owner: "o", Tags: ok, Name: strings.Repeat("é", 200)}, t0)
	if err != nil || len(s.Tags) != 16 {
		t.Fatalf("New at the limits = %v", err)
	}
}

// parentOf returns a parent snapshot with the given stages and expected
// children.
func parentOf(tb testing.TB, expected int, stages ...StageSpec) Snapshot {
	tb.Helper()
	s, err := New(NewJob{ID: "parent", Project: "p", Owner: "o", ExpectedChildren: expected, Stages: stages}, t0)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func totals(v int64, c Children, wsum, done float64) *ChildTotals {
	return &ChildTotals{Version: v, Counts: c, WeightSum: wsum, DoneWP: done}
}

func TestApplyChildrenMeanCountsAndFinish(t *testing.T) {
	p := parentOf(t, 4)
	at := t0.Add(time.Second)
	// Two children created (weights 1 and 3), both queued: nothing moves
	// but the counts.
	p, err := ApplyChildren(p, ChildUpdate{Totals: totals(2, Children{Total: 2, Queued: 2}, 4, 0)}, at)
	if err != nil || p.State != Queued || p.Progress != 0 || p.Children.Total != 2 || p.Seq != 2 {
		t.Fatalf("after create: %v %s", err, summary(p))
	}
	// The weight-3 child runs at 0.5: live 1.5 over 4 + 2 announced = 0.25.
	p, err = ApplyChildren(p, ChildUpdate{Totals: totals(3, Children{Total: 2, Queued: 1, Running: 1}, 4, 0), LiveDelta: 1.5}, at)
	if err != nil || p.State != Running || p.StartedAt == nil || p.Progress != 0.25 {
		t.Fatalf("after a child runs: %v %s", err, summary(p))
	}
	// Older totals never replace newer ones.
	p2, err := ApplyChildren(p, ChildUpdate{Totals: totals(2, Children{Total: 2, Queued: 2}, 4, 0)}, at)
	if !errors.Is(err, ErrUnchanged) || p2.Seq != p.Seq {
		t.Fatalf("older totals: %v seq %d", err, p2.Seq)
	}
	// It succeeds: its share goes from 1.5 to 3; progress 3/6.
	p, err = ApplyChildren(p, ChildUpdate{Totals: totals(4, Children{Total: 2, Queued: 1, Succeeded: 1}, 4, 3), LiveDelta: 1.5}, at)
	if err != nil || p.Progress != 0.5 || p.Agg.Live != 3 {
		t.Fatalf("after success: %v %s %+v", err, summary(p), p.Agg)
	}
	// A delta that arrives after the durable totals counted its child
	// does not count twice once no child is active.
	p, err = ApplyChildren(p, ChildUpdate{Totals: totals(5, Children{Total: 2, Succeeded: 2}, 4, 4)}, at)
	if err != nil || p.Progress != 4.0/6 {
		t.Fatalf("all created children done: %v %s", err, summary(p))
	}
	if late, err := ApplyChildren(p, ChildUpdate{LiveDelta: 1}, at); err != nil || late.Progress != 4.0/6 {
		t.Fatalf("a late delta moved the mean: %v %s", err, summary(late))
	}
	// Four children, one failed, one canceled: failed, "2 of 4".
	p, err = ApplyChildren(p, ChildUpdate{Totals: totals(9, Children{Total: 4, Succeeded: 2, Failed: 1, Canceled: 1}, 6, 4)}, at)
	if err != nil || p.State != Failed || p.Error == nil || *p.Error != "2 of 4 children failed" || p.FinishedAt == nil {
		t.Fatalf("finish: %v %s", err, summary(p))
	}
	if p.Progress != 4.0/6 {
		t.Fatalf("progress of a failed parent = %v, want the mean %v", p.Progress, 4.0/6)
	}
	if _, err := ApplyChildren(p, ChildUpdate{LiveDelta: 1}, at); !errors.Is(err, ErrJobFinished) {
		t.Fatalf("update of a finished parent = %v", err)
	}
}

func TestApplyChildrenAllSucceeded(t *testing.T) {
	p := parentOf(t, 2)
	p, err := ApplyChildren(p, ChildUpdate{Totals: totals(5, Children{Total: 2, Succeeded: 2}, 2, 2)}, t0)
	if err != nil || p.State != Succeeded || p.Progress != 1 || p.Error != nil {
		t.Fatalf("%v %s", err, summary(p))
	}
}

func TestApplyChildrenWithoutExpectedDoesNotFinish(t *testing.T) {
	p := parentOf(t, 0)
	p, err := ApplyChildren(p, ChildUpdate{Totals: totals(5, Children{Total: 2, Succeeded: 2}, 2, 2)}, t0)
	if err != nil || p.State != Running || p.Progress != 1 {
		t.Fatalf("%v %s", err, summary(p))
	}
	// Its owner finishes it; succeeded is allowed now that none is active.
	if p, err = Apply(p, Report{State: stp(Succeeded)}, t0); err != nil || p.State != Succeeded {
		t.Fatalf("%v %s", err, summary(p))
	}
}

func TestSucceededOverUnfinishedChildrenIsRefused(t *testing.T) {
	p := parentOf(t, 0)
	p, _ = ApplyChildren(p, ChildUpdate{Totals: totals(1, Children{Total: 3, Running: 1, Queued: 1, Succeeded: 1}, 3, 1)}, t0)
	_, err := Apply(p, Report{State: stp(Succeeded)}, t0)
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != CodeChildrenUnfinished {
		t.Fatalf("succeeded over running children = %v", err)
	}
	// Failing or canceling it is allowed.
	if _, err := Apply(p, Report{State: stp(Failed), Error: sp("gave up")}, t0); err != nil {
		t.Fatal(err)
	}
}

func TestApplyChildrenStage(t *testing.T) {
	p := parentOf(t, 2, st("prepare"), StageSpec{Name: "work", Children: true})
	p = applyAll(t, p, Report{Stage: sp("prepare"), Progress: fp(1)})
	p, err := ApplyChildren(p, ChildUpdate{Totals: totals(1, Children{Total: 1, Running: 1}, 1, 0), LiveDelta: 1}, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// work = 1 / (1 + 1 announced) = 0.5; overall (1 + 0.5) / 2.
	if got := summary(p); got != "running p=0.75 stage=prepare [prepare:running:1 work:running:0.5]" {
		t.Fatalf("got %s", got)
	}
	// A parent with stages does not finish by itself.
	p, err = ApplyChildren(p, ChildUpdate{Totals: totals(2, Children{Total: 2, Succeeded: 2}, 2, 2), LiveDelta: 1}, t0.Add(time.Minute))
	if err != nil || p.State != Running || p.Stages[1].Progress != 1 {
		t.Fatalf("%v %s", err, summary(p))
	}
}

func TestApplyChildrenWithoutChildrenStageKeepsProgress(t *testing.T) {
	p := parentOf(t, 0, st("a"))
	p, err := ApplyChildren(p, ChildUpdate{Totals: totals(1, Children{Total: 1, Succeeded: 1}, 1, 1)}, t0)
	if err != nil || p.Progress != 0 || p.Children.Succeeded != 1 {
		t.Fatalf("%v %s", err, summary(p))
	}
}

func TestApplyChildrenWaitsForTotals(t *testing.T) {
	// Deltas before any totals (another node's flush came first) move
	// nothing: without Σ weight the mean could overshoot.
	p := parentOf(t, 2)
	p, err := ApplyChildren(p, ChildUpdate{LiveDelta: 3}, t0)
	if err != nil || p.Progress != 0 || p.Agg.Live != 3 {
		t.Fatalf("%v %s %+v", err, summary(p), p.Agg)
	}
	p, err = ApplyChildren(p, ChildUpdate{Totals: totals(2, Children{Total: 2, Running: 2}, 6, 0)}, t0)
	if err != nil || p.Progress != 0.5 {
		t.Fatalf("%v %s", err, summary(p))
	}
}

func TestApplyChildrenProgressNeverGoesDown(t *testing.T) {
	p := parentOf(t, 0)
	p, _ = ApplyChildren(p, ChildUpdate{Totals: totals(1, Children{Total: 1, Running: 1}, 1, 0), LiveDelta: 0.8}, t0)
	// A new child joins at 0: the mean halves, the progress stays.
	p, err := ApplyChildren(p, ChildUpdate{Totals: totals(2, Children{Total: 2, Running: 1, Queued: 1}, 2, 0)}, t0)
	if err != nil || p.Progress != 0.8 {
		t.Fatalf("%v %s", err, summary(p))
	}
}
