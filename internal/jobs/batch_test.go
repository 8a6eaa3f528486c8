package jobs_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/jobs/jobstest"
	"github.com/progressd/progressd/internal/progress"
)

// TestReportMany: a batch applies each report as if alone — in order, the
// same seqs, each refused one with its own error and no effect — writes
// every job whose state moved to the durable store before it returns
// (read here from the database itself, under the write-behind), and
// publishes each job it changed once, at its newest snapshot, so
// subscribers see seqs rise and the terminal snapshot last.
func TestReportMany(t *testing.T) {
	ctx := context.Background()
	p := jobstest.New(t, jobstest.Options{})
	svc := p.Jobs
	var (
		mu        sync.Mutex
		published = map[string][]progress.Snapshot{}
	)
	stop := p.Broker.Subscribe(func(u broker.Update) {
		mu.Lock()
		published[u.Snapshot.JobID] = append(published[u.Snapshot.JobID], u.Snapshot)
		mu.Unlock()
	})
	defer stop()
	create := func() progress.Snapshot {
		s, err := svc.Create(ctx, "alice", jobs.CreateRequest{Project: "p"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b, done := create(), create(), create()
	succeeded := progress.Succeeded
	if _, err := svc.Report(ctx, done.JobID, progress.Report{State: &succeeded}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	clear(published)
	mu.Unlock()
	f := func(v float64) *float64 { return &v }
	reps := []progress.JobReport{
		{JobID: a.JobID, Report: progress.Report{Progress: f(0.2)}},       // queued → running
		{JobID: b.JobID, Report: progress.Report{Progress: f(0.1)}},       // queued → running
		{JobID: a.JobID, Report: progress.Report{Progress: f(0.5)}},       //
		{JobID: a.JobID, Report: progress.Report{Progress: f(1.5)}},       // invalid_progress
		{JobID: done.JobID, Report: progress.Report{Progress: f(0.5)}},    // job_finished
		{JobID: "no-such-job", Report: progress.Report{Progress: f(0.5)}}, // not found
		{JobID: b.JobID, Report: progress.Report{State: &succeeded}},      // running → succeeded
		{JobID: a.JobID, Report: progress.Report{Progress: f(0.6)}},
	}
	out := svc.ReportMany(ctx, reps, nil)
	var pe *progress.Error
	for i, o := range out {
		switch i {
		case 3:
			if !errors.As(o.Err, &pe) || pe.Code != progress.CodeInvalidProgress {
				t.Errorf("report 3: %+v, want invalid_progress", o)
			}
		case 4:
			if !errors.Is(o.Err, progress.ErrJobFinished) {
				t.Errorf("report 4: %+v, want job_finished", o)
			}
		case 5:
			if !errors.Is(o.Err, jobs.ErrNotFound) {
				t.Errorf("report 5: %+v, want not found", o)
			}
		default:
			if o.Err != nil || o.Seq == 0 {
				t.Errorf("report %d: %+v, want a seq", i, o)
			}
		}
	}
	if out[0].Seq != a.Seq+1 || out[2].Seq != a.Seq+2 || out[7].Seq != a.Seq+3 || out[1].Seq != b.Seq+1 || out[6].Seq != b.Seq+2 {
		t.Fatalf("seqs %+v: want a's and b's reports numbered in order, the refused ones skipped", out)
	}
	// Durable before ReportMany returned: the database itself has each
	// job whose state moved, at least at that state.
	if s, err := p.DB.Get(ctx, b.JobID); err != nil || s.State != progress.Succeeded || s.Seq != out[6].Seq {
		t.Fatalf("b in the database: %+v (%v), want succeeded at seq %d", s, err, out[6].Seq)
	}
	if s, err := p.DB.Get(ctx, a.JobID); err != nil || s.State != progress.Running {
		t.Fatalf("a in the database: %+v (%v), want running", s, err)
	}
	if s, err := p.DB.Get(ctx, done.JobID); err != nil || s.Seq != done.Seq+1 {
		t.Fatalf("the finished job changed: %+v (%v)", s, err)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, want := range map[string]uint64{a.JobID: out[7].Seq, b.JobID: out[6].Seq} {
		got := published[id]
		if len(got) != 1 || got[0].Seq != want {
			t.Errorf("job %s published %d times (%v), want once at its newest seq %d", id, len(got), seqsOf(got), want)
		}
	}
	if got := published[b.JobID]; len(got) > 0 && got[len(got)-1].State != progress.Succeeded {
		t.Errorf("b's last publish is %s, want the terminal snapshot", got[len(got)-1].State)
	}
	if len(published[done.JobID]) != 0 {
		t.Errorf("the finished job was published again")
	}
}

// TestReportManyAllow: a caller who may not change a job gets not found
// for its reports, which change nothing; the others are applied.
func TestReportManyAllow(t *testing.T) {
	ctx := context.Background()
	p := jobstest.New(t, jobstest.Options{})
	mine, err := p.Jobs.Create(ctx, "alice", jobs.CreateRequest{Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := p.Jobs.Create(ctx, "bob", jobs.CreateRequest{Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	half := 0.5
	out := p.Jobs.ReportMany(ctx, []progress.JobReport{
		{JobID: theirs.JobID, Report: progress.Report{Progress: &half}},
		{JobID: mine.JobID, Report: progress.Report{Progress: &half}},
	}, func(s progress.Snapshot) bool { return s.Owner == "alice" })
	if !errors.Is(out[0].Err, jobs.ErrNotFound) || out[1].Err != nil {
		t.Fatalf("outcomes %+v, want not found then a seq", out)
	}
	if s, err := p.Jobs.Get(ctx, theirs.JobID); err != nil || s.Seq != theirs.Seq {
		t.Fatalf("bob's job changed: %+v (%v)", s, err)
	}
}

func seqsOf(s []progress.Snapshot) []uint64 {
	out := make([]uint64, len(s))
	for i, x := range s {
		out[i] = x.Seq
	}
	return slices.Clip(out)
}

// TestReportManyChecksEachReportAlone: ReportMany applies every report
// of a batch through one reused state (reportApply); what one report
// found (a parent's unfinished children, the job it applied to) must not
// reach the next. A parent's succeeded is refused while its child runs;
// the next reports, progress and succeeded of a job without children,
// are accepted, and so is the child's succeeded.
func TestReportManyChecksEachReportAlone(t *testing.T) {
	ctx := context.Background()
	p := jobstest.New(t, jobstest.Options{})
	create := func(req jobs.CreateRequest) progress.Snapshot {
		s, err := p.Jobs.Create(ctx, "alice", req)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	parent := create(jobs.CreateRequest{Project: "p"})
	child := create(jobs.CreateRequest{ParentID: parent.JobID})
	lone := create(jobs.CreateRequest{Project: "p"})
	succeeded, half := progress.Succeeded, 0.5
	out := p.Jobs.ReportMany(ctx, []progress.JobReport{
		{JobID: child.JobID, Report: progress.Report{Progress: &half}},
		{JobID: parent.JobID, Report: progress.Report{State: &succeeded}}, // children_unfinished
		{JobID: lone.JobID, Report: progress.Report{Progress: &half}},
		{JobID: lone.JobID, Report: progress.Report{State: &succeeded}},
		{JobID: child.JobID, Report: progress.Report{State: &succeeded}},
	}, nil)
	var pe *progress.Error
	if !errors.As(out[1].Err, &pe) || pe.Code != progress.CodeChildrenUnfinished {
		t.Fatalf("the parent's first succeeded: %+v, want children_unfinished", out[1])
	}
	for _, i := range []int{0, 2, 3, 4} {
		if out[i].Err != nil || out[i].Seq == 0 {
			t.Fatalf("report %d: %+v, want a seq", i, out[i])
		}
	}
	for _, id := range []string{child.JobID, lone.JobID} {
		if s, err := p.Jobs.Get(ctx, id); err != nil || s.State != progress.Succeeded {
			t.Fatalf("job %s: %+v (%v), want succeeded", id, s, err)
		}
	}
	if s, err := p.Jobs.Get(ctx, parent.JobID); err != nil || s.State.Terminal() {
		t.Fatalf("the parent: %+v (%v), want it unfinished", s, err)
	}
}
