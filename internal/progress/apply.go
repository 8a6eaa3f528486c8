package progress

import (
	"encoding/json"
	"math"
	"time"
	"unicode/utf8"
)

// Limits on what a report or job definition may carry. They keep one job's
// snapshot small enough to fan out to thousands of connections.
const (
	MaxMessageBytes = 1024     // message and error text
	MaxStages       = 64       // stages per job
	MaxNameBytes    = 128      // project, stage, pipeline and param names
	MaxParamBytes   = 4 * 1024 // one param value
	MaxParams       = 32       // params per job
)

// Report is one progress report, from any source: an HTTP POST, a line a
// command printed, or a Go caller. Every field is optional; a nil field
// leaves that part of the snapshot as it was.
type Report struct {
	Progress *float64 `json:"progress,omitempty"`
	Stage    *string  `json:"stage,omitempty"`
	Current  *float64 `json:"current,omitempty"`
	Total    *float64 `json:"total,omitempty"`
	Message  *string  `json:"message,omitempty"`
	State    *State   `json:"state,omitempty"`
	Error    *string  `json:"error,omitempty"`
	// Metadata is merged into the job's metadata key by key (a null value
	// removes a key); Result is allowed only with state succeeded.
	Metadata json.RawMessage `json:"metadata,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	// Log holds lines to keep as the job's log (stream "log") before the
	// report applies; Apply ignores it (jobs.Service keeps them).
	Log []string `json:"log,omitempty"`
	// TraceID, when set, replaces the snapshot's trace_id: the trace id
	// of the report request's traceparent header (see TraceID), never
	// from the body.
	TraceID string `json:"-"`

	// Attempt, MaxAttempts and Retry come from the orchestrator, never
	// from a request body: Attempt > 0 starts that attempt (clearing
	// retry_at and the error of the last one); Retry says an attempt
	// failed and the next runs at Retry.At (see lifecycle.go).
	Attempt     int    `json:"-"`
	MaxAttempts int    `json:"-"`
	Retry       *Retry `json:"-"`
}

// Apply is the message adapter: it validates r against prev and returns the
// next snapshot at time now, with Seq one higher. On any error it returns
// prev unchanged with a *Error saying which rule r broke.
//
// The rules, from the contract:
//   - a report naming stage S marks the stages before S succeeded and S
//     running with the reported fraction (progress, or current/total);
//   - without a stage it applies to the current stage, or to the whole job
//     when the job has no stages;
//   - progress never goes down while a job runs: a lower value is accepted
//     and clamped;
//   - the first report moves a queued job to running;
//   - succeeded sets progress 1 and every stage succeeded; failed and
//     canceled keep progress where it was and set error (the report's, or
//     the state's name); a non-empty error without a state means failed;
//   - nothing changes once a job is terminal.
//
// updated_at (and started_at, finished_at) is now at millisecond precision,
// or prev's updated_at if now is earlier: a snapshot's clock never runs
// backwards, even when reports come from nodes whose clocks disagree.
func Apply(prev Snapshot, r Report, now time.Time) (Snapshot, error) {
	if prev.State.Terminal() {
		return prev, ErrJobFinished
	}
	target, err := validate(&prev, &r)
	if err != nil {
		return prev, err
	}
	at := At(now)
	if at.Before(prev.UpdatedAt.Time) {
		// Another node's clock is behind: time in a snapshot never runs
		// backwards, so finished_at cannot come before started_at.
		at = prev.UpdatedAt
	}
	next := prev.Clone()
	next.Seq = prev.Seq + 1
	next.UpdatedAt = at
	next.ReportedAt = nil // a report of its own: its last report is now
	next.Stalled = false
	applyAttempt(&next, &r)
	if r.TraceID != "" {
		next.TraceID = r.TraceID
	}
	if next.State == Queued {
		next.State = Running
		next.StartedAt = at.Ptr()
	}
	if r.Message != nil {
		next.Message = *r.Message
	}
	if given(r.Metadata) {
		if next.Metadata, err = mergeMetadata(prev.Metadata, r.Metadata); err != nil {
			return prev, err
		}
	}
	if given(r.Result) {
		if target != Succeeded {
			return prev, errorf(CodeInvalidResult, "result goes with the report that sets state succeeded; send it then")
		}
		if next.Result, err = checkResult(r.Result); err != nil {
			return prev, err
		}
	}

	applyFraction(&next, &r)

	switch target {
	case Succeeded:
		next.State = Succeeded
		next.Progress = 1
		for i := range next.Stages {
			next.Stages[i].State = Succeeded
			next.Stages[i].Progress = 1
		}
		next.Error = nil
	case Failed, Canceled:
		next.State = target
		for i := range next.Stages {
			if next.Stages[i].State == Running {
				next.Stages[i].State = target
			}
		}
		msg := string(target)
		if r.Error != nil && *r.Error != "" {
			msg = *r.Error
		}
		next.Error = &msg
	}

	if next.State.Terminal() {
		next.FinishedAt = at.Ptr()
		next.ETASeconds = nil
		next.Rate = Rate{}
		next.RetryAt = nil
		return next, nil
	}
	next.Rate = prev.Rate.observe(next.Progress, at)
	next.ETASeconds = next.Rate.eta(next.Progress)
	return next, nil
}

// validate checks every field of r against prev and returns the state the
// report moves the job to (Running unless it names a terminal state).
func validate(prev *Snapshot, r *Report) (State, error) {
	if r.Progress != nil {
		p := *r.Progress
		if math.IsNaN(p) || math.IsInf(p, 0) || p < 0 || p > 1 {
			return "", errorf(CodeInvalidProgress, "progress must be a number from 0 to 1, got %v", p)
		}
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{{"current", r.Current}, {"total", r.Total}} {
		if f.v != nil && (math.IsNaN(*f.v) || math.IsInf(*f.v, 0) || *f.v < 0) {
			return "", errorf(CodeInvalidCount, "%s must be a finite number ≥ 0, got %v", f.name, *f.v)
		}
	}
	if r.Current != nil || r.Total != nil {
		cur, tot := r.Current, r.Total
		sameStage := r.Stage == nil || *r.Stage == prev.Stage
		if cur == nil && sameStage {
			cur = prev.Current
		}
		if tot == nil && sameStage {
			tot = prev.Total
		}
		if cur != nil && tot != nil && *cur > *tot {
			return "", errorf(CodeInvalidCount, "current (%v) must not exceed total (%v)", *cur, *tot)
		}
	}
	if r.Stage != nil {
		if len(prev.Stages) == 0 {
			return "", errorf(CodeUnknownStage, "this job has no stages; report without \"stage\"")
		}
		if prev.stageIndex(*r.Stage) < 0 {
			return "", errorf(CodeUnknownStage, "stage %q is not one of this job's stages", *r.Stage)
		}
	}
	if r.Message != nil {
		if err := checkText("message", *r.Message); err != nil {
			return "", err
		}
	}
	if r.Error != nil {
		if err := checkText("error", *r.Error); err != nil {
			return "", err
		}
	}
	if r.Retry != nil {
		if r.State != nil {
			return "", errorf(CodeInvalidState, "a retry keeps the job running; it cannot also set state %s", *r.State)
		}
		if err := checkText("error", r.Retry.Error); err != nil {
			return "", err
		}
	}
	target := Running
	if r.State != nil {
		switch s := *r.State; {
		case !s.Valid():
			return "", errorf(CodeInvalidState, "state %q is not one of running, succeeded, failed, canceled", s)
		case s == Queued:
			return "", errorf(CodeInvalidState, "a job cannot go back to queued")
		default:
			target = s
		}
	}
	if target == Succeeded && prev.Children != nil && prev.Children.Active() > 0 {
		return "", errorf(CodeChildrenUnfinished, "%d of this job's children are still queued or running: finish or cancel them first",
			prev.Children.Active())
	}
	// An empty error is no error: clients that always send the field
	// ("error": "") must not fail or be refused for it.
	if r.Error != nil && *r.Error != "" {
		switch target {
		case Running:
			if r.State == nil {
				target = Failed // an error alone means the job failed
				break
			}
			fallthrough
		case Succeeded:
			return "", errorf(CodeInvalidState, "\"error\" goes with state failed or canceled, not %s", target)
		}
	}
	return target, nil
}

func checkText(field, s string) error {
	if len(s) > MaxMessageBytes {
		return errorf(CodeInvalidMessage, "%s is %d bytes; the limit is %d", field, len(s), MaxMessageBytes)
	}
	if !utf8.ValidString(s) {
		return errorf(CodeInvalidMessage, "%s is not valid UTF-8", field)
	}
	return nil
}

// applyFraction moves the stage (if any) and the fraction the report gives
// into next, keeping every stage's progress and the overall progress from
// going down.
func applyFraction(next *Snapshot, r *Report) {
	cur := next.stageIndex(next.Stage)
	idx := cur
	if r.Stage != nil {
		idx = next.stageIndex(*r.Stage)
	} else if idx < 0 && len(next.Stages) > 0 {
		idx = 0
	}

	if idx >= 0 && idx < cur {
		// A late report about a stage that is already done: its numbers
		// belong to the past, so only the message (applied above) counts.
		return
	}
	if idx > cur || r.Stage != nil && *r.Stage != next.Stage {
		// A new stage: the counts of the old one no longer apply.
		next.Current, next.Total = nil, nil
	}
	if r.Current != nil {
		next.Current = clonePtr(r.Current)
	}
	if r.Total != nil {
		next.Total = clonePtr(r.Total)
	}

	fraction := -1.0
	switch {
	case r.Progress != nil:
		fraction = *r.Progress
	case (r.Current != nil || r.Total != nil) && next.Current != nil && next.Total != nil && *next.Total > 0:
		fraction = *next.Current / *next.Total
	}

	if idx < 0 { // no stages: the fraction is the job's
		if fraction > next.Progress {
			next.Progress = fraction
		}
		return
	}

	next.Stage = next.Stages[idx].Name
	for i := 0; i < idx; i++ {
		next.Stages[i].State = Succeeded
		next.Stages[i].Progress = 1
	}
	st := &next.Stages[idx]
	st.State = Running
	if fraction > st.Progress {
		st.Progress = fraction
	}
	if overall := weighted(next.Stages); overall > next.Progress {
		next.Progress = overall
	}
}

// weighted is the overall progress of stages: the weighted mean of their
// progress, clamped to [0, 1] against rounding. Weights are divided by the
// largest first, so any finite weights New accepts (1e308 included) sum
// without overflowing.
func weighted(stages []Stage) float64 {
	var largest float64
	for _, s := range stages {
		largest = math.Max(largest, s.Weight)
	}
	if !(largest > 0) || math.IsInf(largest, 0) {
		return 0
	}
	var sum, done float64
	for _, s := range stages {
		w := s.Weight / largest
		sum += w
		done += w * s.Progress
	}
	p := done / sum
	if !(p > 0) { // also NaN
		return 0
	}
	return math.Min(1, p)
}
