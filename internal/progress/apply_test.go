package progress

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestApplyRules walks every rule of Apply's doc comment and the contract's
// "Reports" and "Terminal states": each case applies some reports to a new
// job and compares the last snapshot's summary.
func TestApplyRules(t *testing.T) {
	t.Parallel()
	abc := []StageSpec{st("a"), st("b"), st("c")}
	weighted := []StageSpec{ws("fetch", 1), ws("encode", 8)}
	tests := []struct {
		name    string
		stages  []StageSpec
		reports []Report
		want    string
	}{
		{
			name:    "first report moves queued to running",
			reports: []Report{{}},
			want:    "running p=0",
		},
		{
			name:    "first report on a job with stages starts the first stage",
			stages:  abc,
			reports: []Report{{Message: sp("starting")}},
			want:    `running p=0 stage=a [a:running:0 b:queued:0 c:queued:0] msg="starting"`,
		},
		{
			name:    "explicit running state",
			reports: []Report{{State: stp(Running), Progress: fp(0.25)}},
			want:    "running p=0.25",
		},
		{
			name:    "no stages: progress is the job's",
			reports: []Report{{Progress: fp(0.42)}},
			want:    "running p=0.42",
		},
		{
			name:    "progress 0 and 1 are accepted",
			reports: []Report{{Progress: fp(0)}, {Progress: fp(1)}},
			want:    "running p=1",
		},
		{
			name:    "no stages: lower progress is clamped",
			reports: []Report{{Progress: fp(0.6)}, {Progress: fp(0.3)}},
			want:    "running p=0.6",
		},
		{
			name:    "no stages: fraction from current/total",
			reports: []Report{{Current: fp(420), Total: fp(1200)}},
			want:    "running p=0.35 420/1200",
		},
		{
			name:    "no stages: current alone uses the previous total",
			reports: []Report{{Current: fp(10), Total: fp(100)}, {Current: fp(50)}},
			want:    "running p=0.5 50/100",
		},
		{
			name:    "no stages: total alone uses the previous current",
			reports: []Report{{Current: fp(10), Total: fp(100)}, {Total: fp(20)}},
			want:    "running p=0.5 10/20",
		},
		{
			name:    "no stages: lower current is clamped",
			reports: []Report{{Current: fp(50), Total: fp(100)}, {Current: fp(20)}},
			want:    "running p=0.5 20/100",
		},
		{
			name:    "progress wins over current/total",
			reports: []Report{{Progress: fp(0.1), Current: fp(5), Total: fp(10)}},
			want:    "running p=0.1 5/10",
		},
		{
			name:    "total 0 gives no fraction",
			reports: []Report{{Progress: fp(0.2)}, {Current: fp(0), Total: fp(0)}},
			want:    "running p=0.2 0/0",
		},
		{
			name:    "current equal to total",
			reports: []Report{{Current: fp(7), Total: fp(7)}},
			want:    "running p=1 7/7",
		},
		{
			name:    "stage marks earlier stages succeeded",
			stages:  abc,
			reports: []Report{{Stage: sp("c"), Progress: fp(0.5)}},
			want:    "running p=0.8333 stage=c [a:succeeded:1 b:succeeded:1 c:running:0.5]",
		},
		{
			name:    "stage change completes the previous stage",
			stages:  abc,
			reports: []Report{{Stage: sp("a"), Progress: fp(0.3)}, {Stage: sp("b")}},
			want:    "running p=0.3333 stage=b [a:succeeded:1 b:running:0 c:queued:0]",
		},
		{
			name:    "weights 1 and 8",
			stages:  weighted,
			reports: []Report{{Stage: sp("fetch"), Progress: fp(1)}, {Stage: sp("encode"), Progress: fp(0.35)}},
			want:    "running p=0.4222 stage=encode [fetch:succeeded:1 encode:running:0.35]",
		},
		{
			name:    "weights 1 and 8: first stage half done",
			stages:  weighted,
			reports: []Report{{Stage: sp("fetch"), Progress: fp(0.5)}},
			want:    "running p=0.05556 stage=fetch [fetch:running:0.5 encode:queued:0]",
		},
		{
			name:    "weights 1 and 8: jump straight to the second stage",
			stages:  weighted,
			reports: []Report{{Stage: sp("encode"), Current: fp(420), Total: fp(1200), Message: sp("frame 420/1200")}},
			want:    `running p=0.4222 stage=encode [fetch:succeeded:1 encode:running:0.35] 420/1200 msg="frame 420/1200"`,
		},
		{
			name:    "default weights are equal",
			stages:  []StageSpec{st("a"), ws("b", 1)},
			reports: []Report{{Stage: sp("b"), Progress: fp(0.5)}},
			want:    "running p=0.75 stage=b [a:succeeded:1 b:running:0.5]",
		},
		{
			name:    "tiny and huge weights",
			stages:  []StageSpec{ws("a", 1e-300), ws("b", 1e300), ws("c", 1e300)},
			reports: []Report{{Stage: sp("b"), Progress: fp(0.5)}},
			want:    "running p=0.25 stage=b [a:succeeded:1 b:running:0.5 c:queued:0]",
		},
		{
			name:    "weights whose sum overflows",
			stages:  []StageSpec{ws("a", 1.5e308), ws("b", 1.5e308)},
			reports: []Report{{Stage: sp("b"), Progress: fp(0.5)}},
			want:    "running p=0.75 stage=b [a:succeeded:1 b:running:0.5]",
		},
		{
			name:    "report without stage applies to the current stage",
			stages:  abc,
			reports: []Report{{Stage: sp("b"), Progress: fp(0.2)}, {Progress: fp(0.7)}},
			want:    "running p=0.5667 stage=b [a:succeeded:1 b:running:0.7 c:queued:0]",
		},
		{
			name:    "report without stage before any stage applies to the first",
			stages:  abc,
			reports: []Report{{Progress: fp(0.6)}},
			want:    "running p=0.2 stage=a [a:running:0.6 b:queued:0 c:queued:0]",
		},
		{
			name:    "lower stage progress is clamped",
			stages:  abc,
			reports: []Report{{Stage: sp("a"), Progress: fp(0.6)}, {Stage: sp("a"), Progress: fp(0.2)}},
			want:    "running p=0.2 stage=a [a:running:0.6 b:queued:0 c:queued:0]",
		},
		{
			name:   "late report about an earlier stage changes only the message",
			stages: abc,
			reports: []Report{
				{Stage: sp("b"), Progress: fp(0.5), Current: fp(5), Total: fp(10)},
				{Stage: sp("a"), Progress: fp(0.1), Current: fp(1), Total: fp(100), Message: sp("late")},
			},
			want: `running p=0.5 stage=b [a:succeeded:1 b:running:0.5 c:queued:0] 5/10 msg="late"`,
		},
		{
			name:    "stage fraction from current/total",
			stages:  abc,
			reports: []Report{{Stage: sp("b"), Current: fp(3), Total: fp(4)}},
			want:    "running p=0.5833 stage=b [a:succeeded:1 b:running:0.75 c:queued:0] 3/4",
		},
		{
			name:    "current/total kept within a stage",
			stages:  abc,
			reports: []Report{{Stage: sp("a"), Current: fp(1), Total: fp(4)}, {Current: fp(2)}, {Stage: sp("a"), Message: sp("m")}},
			want:    `running p=0.1667 stage=a [a:running:0.5 b:queued:0 c:queued:0] 2/4 msg="m"`,
		},
		{
			name:    "current/total reset when the stage changes",
			stages:  abc,
			reports: []Report{{Stage: sp("a"), Current: fp(5), Total: fp(10)}, {Stage: sp("b"), Progress: fp(0.1)}},
			want:    "running p=0.3667 stage=b [a:succeeded:1 b:running:0.1 c:queued:0]",
		},
		{
			name:    "current/total of the new stage after a change",
			stages:  abc,
			reports: []Report{{Stage: sp("a"), Current: fp(5), Total: fp(10)}, {Stage: sp("b"), Current: fp(1)}},
			want:    "running p=0.3333 stage=b [a:succeeded:1 b:running:0 c:queued:0] 1/nil",
		},
		{
			name:    "message is kept until replaced",
			reports: []Report{{Message: sp("one")}, {Progress: fp(0.5)}},
			want:    `running p=0.5 msg="one"`,
		},
		{
			name:    "empty message clears it",
			reports: []Report{{Message: sp("one")}, {Message: sp("")}},
			want:    "running p=0",
		},
		{
			name:    "message of exactly the limit",
			reports: []Report{{Message: sp(strings.Repeat("é", MaxMessageBytes/2))}},
			want:    `running p=0 msg="` + strings.Repeat("é", MaxMessageBytes/2) + `"`,
		},
		{
			name:    "succeeded sets progress 1 and every stage succeeded",
			stages:  abc,
			reports: []Report{{Stage: sp("a"), Progress: fp(0.5)}, {State: stp(Succeeded)}},
			want:    "succeeded p=1 stage=a [a:succeeded:1 b:succeeded:1 c:succeeded:1]",
		},
		{
			name:    "succeeded without stages",
			reports: []Report{{Progress: fp(0.3)}, {State: stp(Succeeded), Message: sp("done")}},
			want:    `succeeded p=1 msg="done"`,
		},
		{
			name:    "succeeded as the first report",
			stages:  abc,
			reports: []Report{{State: stp(Succeeded)}},
			want:    "succeeded p=1 stage=a [a:succeeded:1 b:succeeded:1 c:succeeded:1]",
		},
		{
			name:    "failed keeps progress and sets error",
			stages:  abc,
			reports: []Report{{Stage: sp("b"), Progress: fp(0.5)}, {State: stp(Failed), Error: sp("disk full")}},
			want:    `failed p=0.5 stage=b [a:succeeded:1 b:failed:0.5 c:queued:0] err="disk full"`,
		},
		{
			name:    "failed without error text gets a default",
			reports: []Report{{Progress: fp(0.4)}, {State: stp(Failed)}},
			want:    `failed p=0.4 err="failed"`,
		},
		{
			name:    "failed with empty error text gets a default",
			reports: []Report{{Progress: fp(0.4)}, {State: stp(Failed), Error: sp("")}},
			want:    `failed p=0.4 err="failed"`,
		},
		{
			name:    "failed report carrying progress: the report's progress counts, then it fails",
			reports: []Report{{Progress: fp(0.4)}, {State: stp(Failed), Progress: fp(0.7), Error: sp("x")}},
			want:    `failed p=0.7 err="x"`,
		},
		{
			name:    "failed report carrying a lower progress keeps the higher",
			reports: []Report{{Progress: fp(0.4)}, {State: stp(Failed), Progress: fp(0.1)}},
			want:    `failed p=0.4 err="failed"`,
		},
		{
			name:    "error alone implies failed",
			stages:  abc,
			reports: []Report{{Stage: sp("a"), Progress: fp(0.3)}, {Error: sp("boom")}},
			want:    `failed p=0.1 stage=a [a:failed:0.3 b:queued:0 c:queued:0] err="boom"`,
		},
		{
			name:    "empty error alone is no error",
			reports: []Report{{Progress: fp(0.5), Error: sp("")}},
			want:    "running p=0.5",
		},
		{
			name:    "empty error with state succeeded",
			reports: []Report{{State: stp(Succeeded), Error: sp("")}},
			want:    "succeeded p=1",
		},
		{
			name:    "empty error with state running",
			reports: []Report{{State: stp(Running), Error: sp("")}},
			want:    "running p=0",
		},
		{
			name:    "canceled keeps progress and sets a default error",
			reports: []Report{{Progress: fp(0.3)}, {State: stp(Canceled)}},
			want:    `canceled p=0.3 err="canceled"`,
		},
		{
			name:    "canceled with an error text",
			stages:  abc,
			reports: []Report{{Stage: sp("a")}, {State: stp(Canceled), Error: sp("by alice")}},
			want:    `canceled p=0 stage=a [a:canceled:0 b:queued:0 c:queued:0] err="by alice"`,
		},
		{
			name:    "canceled while queued",
			reports: []Report{{State: stp(Canceled)}},
			want:    `canceled p=0 err="canceled"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := applyAll(t, newJob(t, tc.stages...), tc.reports...)
			if s := summary(got); s != tc.want {
				t.Errorf("after %d reports\n got %s\nwant %s", len(tc.reports), s, tc.want)
			}
			if got.Seq != uint64(1+len(tc.reports)) {
				t.Errorf("seq %d, want %d", got.Seq, 1+len(tc.reports))
			}
			if got.State.Terminal() && got.ETASeconds != nil {
				t.Errorf("terminal snapshot has eta %v", *got.ETASeconds)
			}
		})
	}
}

// TestApplyRejects feeds every kind of bad report and checks the code, that
// prev comes back as it was, and that prev itself was not modified.
func TestApplyRejects(t *testing.T) {
	t.Parallel()
	abc := []StageSpec{st("a"), st("b"), st("c")}
	tests := []struct {
		name   string
		stages []StageSpec
		before []Report
		r      Report
		code   string
	}{
		{name: "progress NaN", r: Report{Progress: fp(nan())}, code: CodeInvalidProgress},
		{name: "progress +Inf", r: Report{Progress: fp(inf(1))}, code: CodeInvalidProgress},
		{name: "progress -Inf", r: Report{Progress: fp(inf(-1))}, code: CodeInvalidProgress},
		{name: "progress -0.1", r: Report{Progress: fp(-0.1)}, code: CodeInvalidProgress},
		{name: "progress 1.1", r: Report{Progress: fp(1.1)}, code: CodeInvalidProgress},
		{name: "progress just above 1", r: Report{Progress: fp(1.0000000000000002)}, code: CodeInvalidProgress},
		{name: "progress NaN with a stage", stages: abc, r: Report{Stage: sp("a"), Progress: fp(nan())}, code: CodeInvalidProgress},
		{name: "current NaN", r: Report{Current: fp(nan())}, code: CodeInvalidCount},
		{name: "current +Inf", r: Report{Current: fp(inf(1))}, code: CodeInvalidCount},
		{name: "current -Inf", r: Report{Current: fp(inf(-1))}, code: CodeInvalidCount},
		{name: "current negative", r: Report{Current: fp(-1)}, code: CodeInvalidCount},
		{name: "total NaN", r: Report{Total: fp(nan())}, code: CodeInvalidCount},
		{name: "total +Inf", r: Report{Total: fp(inf(1))}, code: CodeInvalidCount},
		{name: "total -Inf", r: Report{Total: fp(inf(-1))}, code: CodeInvalidCount},
		{name: "total negative", r: Report{Current: fp(0), Total: fp(-5)}, code: CodeInvalidCount},
		{name: "current above total", r: Report{Current: fp(11), Total: fp(10)}, code: CodeInvalidCount},
		{name: "current above total 0", r: Report{Current: fp(1), Total: fp(0)}, code: CodeInvalidCount},
		{
			name:   "current above the previous total",
			before: []Report{{Current: fp(1), Total: fp(10)}},
			r:      Report{Current: fp(11)}, code: CodeInvalidCount,
		},
		{
			name:   "total below the previous current",
			before: []Report{{Current: fp(5), Total: fp(10)}},
			r:      Report{Total: fp(4)}, code: CodeInvalidCount,
		},
		{
			name:   "current above the previous total of the same stage",
			stages: abc,
			before: []Report{{Stage: sp("b"), Current: fp(1), Total: fp(10)}},
			r:      Report{Stage: sp("b"), Current: fp(11)}, code: CodeInvalidCount,
		},
		{
			name:   "current above the previous total of the current stage",
			stages: abc,
			before: []Report{{Stage: sp("b"), Current: fp(1), Total: fp(10)}},
			r:      Report{Current: fp(11)}, code: CodeInvalidCount,
		},
		{name: "unknown stage", stages: abc, r: Report{Stage: sp("d"), Progress: fp(0.5)}, code: CodeUnknownStage},
		{name: "empty stage name", stages: abc, r: Report{Stage: sp("")}, code: CodeUnknownStage},
		{name: "stage on a job without stages", r: Report{Stage: sp("a")}, code: CodeUnknownStage},
		{name: "unknown state", r: Report{State: stp("done")}, code: CodeInvalidState},
		{name: "empty state", r: Report{State: stp("")}, code: CodeInvalidState},
		{name: "state in capitals", r: Report{State: stp("SUCCEEDED")}, code: CodeInvalidState},
		{name: "state queued", r: Report{State: stp(Queued)}, code: CodeInvalidState},
		{name: "state queued while running", before: []Report{{}}, r: Report{State: stp(Queued)}, code: CodeInvalidState},
		{name: "error with state succeeded", r: Report{State: stp(Succeeded), Error: sp("x")}, code: CodeInvalidState},
		{name: "error with state running", r: Report{State: stp(Running), Error: sp("x")}, code: CodeInvalidState},
		{name: "message over 1024 bytes", r: Report{Message: sp(strings.Repeat("x", MaxMessageBytes+1))}, code: CodeInvalidMessage},
		{name: "message invalid UTF-8", r: Report{Message: sp("ok \xff")}, code: CodeInvalidMessage},
		{name: "error over 1024 bytes", r: Report{State: stp(Failed), Error: sp(strings.Repeat("x", MaxMessageBytes+1))}, code: CodeInvalidMessage},
		{name: "error invalid UTF-8", r: Report{Error: sp("\xc3\x28")}, code: CodeInvalidMessage},
		{
			name:   "bad report after progress on stages",
			stages: abc,
			before: []Report{{Stage: sp("b"), Progress: fp(0.5), Current: fp(5), Total: fp(10), Message: sp("m")}},
			r:      Report{Stage: sp("c"), Progress: fp(2)}, code: CodeInvalidProgress,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prev := applyAll(t, newJob(t, tc.stages...), tc.before...)
			keep := prev.Clone()
			got, err := Apply(prev, tc.r, t0.Add(time.Hour))
			checkCode(t, err, tc.code)
			if !reflect.DeepEqual(got, keep) {
				t.Errorf("returned snapshot differs from prev:\n got %s\nwant %s", summary(got), summary(keep))
			}
			if !reflect.DeepEqual(prev, keep) {
				t.Errorf("prev was modified:\n now %s\nwas %s", summary(prev), summary(keep))
			}
		})
	}
}

// TestApplyTerminalIsFinal checks that every report, good or bad, is refused
// with ErrJobFinished once a job is terminal.
func TestApplyTerminalIsFinal(t *testing.T) {
	t.Parallel()
	reports := []Report{
		{},
		{Progress: fp(0.5)},
		{Progress: fp(nan())},
		{Stage: sp("b")},
		{Stage: sp("nope")},
		{Message: sp("again")},
		{State: stp(Running)},
		{State: stp(Succeeded)},
		{State: stp(Failed), Error: sp("late")},
		{State: stp(Canceled)},
		{State: stp(Queued)},
		{Error: sp("late")},
	}
	for _, final := range []Report{
		{State: stp(Succeeded)},
		{State: stp(Failed), Error: sp("boom")},
		{Error: sp("boom")},
		{State: stp(Canceled)},
	} {
		done := applyAll(t, newJob(t, st("a"), st("b")), Report{Stage: sp("a"), Progress: fp(0.5)}, final)
		if !done.State.Terminal() {
			t.Fatalf("%s gave state %s", reportString(final), done.State)
		}
		for _, r := range reports {
			t.Run(string(done.State)+"/"+reportString(r), func(t *testing.T) {
				keep := done.Clone()
				got, err := Apply(done, r, t0.Add(time.Hour))
				if !errors.Is(err, ErrJobFinished) {
					t.Fatalf("error %v, want ErrJobFinished", err)
				}
				checkCode(t, err, CodeJobFinished)
				var pe *Error
				if !errors.As(err, &pe) || pe.Code != CodeJobFinished {
					t.Errorf("errors.As gave %v", pe)
				}
				if !reflect.DeepEqual(got, keep) || !reflect.DeepEqual(done, keep) {
					t.Errorf("terminal snapshot changed: %s", summary(got))
				}
			})
		}
	}
}

func TestErrorIs(t *testing.T) {
	t.Parallel()
	err := error(&Error{Code: CodeJobFinished, Message: "another text"})
	if !errors.Is(err, ErrJobFinished) {
		t.Error("an *Error with code job_finished does not match ErrJobFinished")
	}
	if errors.Is(&Error{Code: CodeInvalidProgress, Message: "x"}, ErrJobFinished) {
		t.Error("invalid_progress matches ErrJobFinished")
	}
	wrapped := errors.Join(errors.New("context"), err)
	if !errors.Is(wrapped, ErrJobFinished) {
		t.Error("a wrapped job_finished does not match ErrJobFinished")
	}
	if got := ErrJobFinished.Error(); !strings.HasPrefix(got, CodeJobFinished+": ") {
		t.Errorf("Error() = %q", got)
	}
}

// TestApplySeqAndTimestamps follows one job through its life and checks seq,
// created_at, started_at, updated_at and finished_at at each step.
func TestApplySeqAndTimestamps(t *testing.T) {
	t.Parallel()
	ms := func(d time.Duration) Time { return At(t0.Add(d)) }
	s := newJob(t, st("a"), st("b"))
	if s.Seq != 1 || s.State != Queued || s.StartedAt != nil || s.FinishedAt != nil {
		t.Fatalf("new job: seq %d state %s started %v finished %v", s.Seq, s.State, s.StartedAt, s.FinishedAt)
	}
	if s.CreatedAt != ms(0) || s.UpdatedAt != ms(0) {
		t.Fatalf("new job: created %v updated %v, want %v", s.CreatedAt, s.UpdatedAt, ms(0))
	}
	if s.CreatedAt.Location() != time.UTC || s.CreatedAt.Nanosecond()%int(time.Millisecond) != 0 {
		t.Fatalf("created_at %v is not UTC at millisecond precision", s.CreatedAt)
	}

	steps := []struct {
		at       time.Duration
		r        Report
		started  time.Duration
		finished time.Duration // -1: none
	}{
		{at: 1500 * time.Millisecond, r: Report{Message: sp("hello")}, started: 1500 * time.Millisecond, finished: -1},
		{at: 2 * time.Second, r: Report{Progress: fp(0.1)}, started: 1500 * time.Millisecond, finished: -1},
		{at: 3*time.Second + 999999*time.Nanosecond, r: Report{Stage: sp("b")}, started: 1500 * time.Millisecond, finished: -1},
		{at: 5 * time.Second, r: Report{State: stp(Succeeded)}, started: 1500 * time.Millisecond, finished: 5 * time.Second},
	}
	for i, step := range steps {
		// A rejected report in between changes neither seq nor time.
		if _, err := Apply(s, Report{Progress: fp(-1)}, t0.Add(step.at)); err == nil {
			t.Fatal("bad report accepted")
		}
		next, err := Apply(s, step.r, t0.Add(step.at))
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if next.Seq != s.Seq+1 {
			t.Errorf("step %d: seq %d after %d", i, next.Seq, s.Seq)
		}
		if next.CreatedAt != ms(0) {
			t.Errorf("step %d: created_at changed to %v", i, next.CreatedAt)
		}
		if next.UpdatedAt != ms(step.at) {
			t.Errorf("step %d: updated_at %v, want %v", i, next.UpdatedAt, ms(step.at))
		}
		if next.StartedAt == nil || *next.StartedAt != ms(step.started) {
			t.Errorf("step %d: started_at %v, want %v", i, next.StartedAt, ms(step.started))
		}
		switch {
		case step.finished < 0 && next.FinishedAt != nil:
			t.Errorf("step %d: finished_at %v while %s", i, *next.FinishedAt, next.State)
		case step.finished >= 0 && (next.FinishedAt == nil || *next.FinishedAt != ms(step.finished)):
			t.Errorf("step %d: finished_at %v, want %v", i, next.FinishedAt, ms(step.finished))
		}
		s = next
	}
	if s.Seq != 5 {
		t.Errorf("final seq %d, want 5", s.Seq)
	}
}

// TestApplyClockSkew checks that a report stamped before the previous one
// (another node's clock behind) does not move updated_at backwards or put
// finished_at before started_at.
func TestApplyClockSkew(t *testing.T) {
	t.Parallel()
	s := applyAll(t, newJob(t), Report{Progress: fp(0.1)}, Report{Progress: fp(0.2)})
	before := s.UpdatedAt
	next, err := Apply(s, Report{Progress: fp(0.3)}, t0.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if next.UpdatedAt.Before(before.Time) {
		t.Errorf("updated_at went back from %v to %v", before, next.UpdatedAt)
	}
	done, err := Apply(next, Report{State: stp(Succeeded)}, t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if done.FinishedAt.Before(done.StartedAt.Time) || done.FinishedAt.Before(done.CreatedAt.Time) {
		t.Errorf("finished_at %v before started_at %v / created_at %v", done.FinishedAt, done.StartedAt, done.CreatedAt)
	}
	if done.Seq != next.Seq+1 {
		t.Errorf("seq %d after %d", done.Seq, next.Seq)
	}
}

// TestApplySharesNothing mutates every part of the returned snapshot and of
// prev in turn, and checks the other one did not move.
func TestApplySharesNothing(t *testing.T) {
	t.Parallel()
	mk := func() Snapshot {
		s, err := New(NewJob{
			ID: "j", Project: "p", Owner: "o", Pipeline: "demo",
			Params: map[string]string{"input": "a.mp4"},
			Stages: []StageSpec{st("a"), st("b")},
		}, t0)
		if err != nil {
			t.Fatal(err)
		}
		s = applyAll(t, s,
			Report{Stage: sp("a"), Current: fp(1), Total: fp(10)},
			Report{Current: fp(2)},
			Report{Current: fp(3)},
		)
		// Fields Apply only sets at terminal states: give them values so
		// their copies are checked too.
		s.Error = sp("earlier")
		s.FinishedAt = At(t0).Ptr()
		return s
	}
	for _, r := range []Report{
		{Current: fp(4)},
		{Message: sp("m")},
		{Stage: sp("b"), Progress: fp(0.5)},
		{State: stp(Failed), Error: sp("boom")},
		{State: stp(Succeeded)},
	} {
		t.Run(reportString(r), func(t *testing.T) {
			prev := mk()
			next, err := Apply(prev, r, t0.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if s := shared(prev, next); len(s) > 0 {
				t.Errorf("next shares %v with prev", s)
			}
			keepPrev := prev.Clone()
			mutate(&next)
			if !reflect.DeepEqual(prev, keepPrev) {
				t.Errorf("changing next changed prev: %s", summary(prev))
			}

			prev = mk()
			next, err = Apply(prev, r, t0.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			keepNext := next.Clone()
			mutate(&prev)
			if !reflect.DeepEqual(next, keepNext) {
				t.Errorf("changing prev changed next: %s", summary(next))
			}
		})
	}
}

// mutate writes through every slice, map and pointer of s.
func mutate(s *Snapshot) {
	for i := range s.Stages {
		s.Stages[i].Progress = 0.123
		s.Stages[i].State = "x"
		s.Stages[i].Name = "x"
	}
	for k := range s.Params {
		s.Params[k] = "changed"
	}
	if s.Params != nil {
		s.Params["new"] = "v"
	}
	for _, p := range []*float64{s.Current, s.Total, s.ETASeconds} {
		if p != nil {
			*p = -42
		}
	}
	for _, p := range []*Time{s.StartedAt, s.FinishedAt} {
		if p != nil {
			*p = Time{}
		}
	}
	if s.Error != nil {
		*s.Error = "changed"
	}
}

func TestCloneSharesNothing(t *testing.T) {
	t.Parallel()
	s := applyAll(t, newJob(t, st("a")), Report{Current: fp(1), Total: fp(2)})
	s.Params = map[string]string{"k": "v"}
	s.ETASeconds = fp(3)
	s.Error = sp("e")
	s.FinishedAt = At(t0).Ptr()
	c := s.Clone()
	if !reflect.DeepEqual(c, s) {
		t.Fatalf("clone differs: %s vs %s", summary(c), summary(s))
	}
	if sh := shared(s, c); len(sh) > 0 {
		t.Errorf("clone shares %v", sh)
	}
	if got := (Snapshot{}).Clone().Stages; got == nil {
		t.Error("clone of a snapshot without stages has nil stages; want []")
	}
}

func TestStateHelpers(t *testing.T) {
	t.Parallel()
	for _, s := range States {
		if !s.Valid() {
			t.Errorf("%s not valid", s)
		}
		if want := s == Succeeded || s == Failed || s == Canceled; s.Terminal() != want {
			t.Errorf("%s.Terminal() = %v", s, s.Terminal())
		}
	}
	for _, s := range []State{"", "done", "Running"} {
		if s.Valid() || s.Terminal() {
			t.Errorf("%q: valid %v terminal %v", s, s.Valid(), s.Terminal())
		}
	}
}
