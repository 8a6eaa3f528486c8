package progress

import (
	"math"
	"strings"
	"time"
)

// Attempts, stalls and abandoned jobs (SPEC part two, "Metadata, result,
// attempts, stalls").
//
// A job's "last report" is when it last reported itself (or was created):
// a parent's snapshot also changes when its children do, and that is not
// a report of its own. A stall is judged from the last report: a running
// job with StallAfter set, and no report for that long, is Stalled until
// its next report. Marking a stall changes seq but not updated_at, so
// updated_at keeps saying when the job last moved. Abandonment is judged
// from updated_at — the last report, or a change from its children (a
// parent whose children work is not silent) — and fails the job; a
// pipeline job is never abandoned, its stages' timeouts bound it.

// Codes of the create fields of this file.
const (
	CodeInvalidStallAfter   = "invalid_stall_after"   // stall_after_seconds not a number > 0 (or too large)
	CodeInvalidAbandonAfter = "invalid_abandon_after" // abandon_after_seconds likewise, or on a pipeline job
)

// MaxLimitSeconds bounds stall_after_seconds and abandon_after_seconds:
// a year. Longer is a mistake (milliseconds sent as seconds, say), and it
// keeps every deadline inside the range of a time.Duration.
const MaxLimitSeconds = 365 * 24 * 3600

// Retry is what a pipeline job reports when an attempt failed and another
// will run: when, and the failure that caused it.
type Retry struct {
	At    time.Time
	Error string
}

// LastReport is when the job last reported itself, or was created.
func (s *Snapshot) LastReport() Time {
	if s.ReportedAt != nil {
		return *s.ReportedAt
	}
	return s.UpdatedAt
}

// StallDue is when the job is to be marked stalled, and false if it
// cannot stall now: no StallAfter, not running, or stalled already.
func (s *Snapshot) StallDue() (time.Time, bool) {
	if s.StallAfter <= 0 || s.State != Running || s.Stalled {
		return time.Time{}, false
	}
	return s.LastReport().Add(Seconds(s.StallAfter)), true
}

// AbandonDue is when the job is abandoned with the server's default
// limit def (0: none), and false if it never is: terminal, a pipeline
// job, or no limit.
func (s *Snapshot) AbandonDue(def time.Duration) (time.Time, time.Duration, bool) {
	if s.State.Terminal() || s.Pipeline != "" {
		return time.Time{}, 0, false
	}
	limit := def
	if s.AbandonAfter > 0 {
		limit = Seconds(s.AbandonAfter)
	}
	if limit <= 0 {
		return time.Time{}, 0, false
	}
	return s.UpdatedAt.Add(limit), limit, true
}

// Stall marks prev stalled if it is due at now; ErrUnchanged if it is not
// (ErrJobFinished if it is terminal). Only seq and stalled change.
func Stall(prev Snapshot, now time.Time) (Snapshot, error) {
	if prev.State.Terminal() {
		return prev, ErrJobFinished
	}
	due, ok := prev.StallDue()
	if !ok || now.Before(due) {
		return prev, ErrUnchanged
	}
	next := prev.Clone()
	next.Seq = prev.Seq + 1
	next.Stalled = true
	return next, nil
}

// Abandon fails prev with "no report for <limit>" if it is due at now
// with the server's default limit def; ErrUnchanged if it is not.
func Abandon(prev Snapshot, now time.Time, def time.Duration) (Snapshot, error) {
	if prev.State.Terminal() {
		return prev, ErrJobFinished
	}
	due, limit, ok := prev.AbandonDue(def)
	if !ok || now.Before(due) {
		return prev, ErrUnchanged
	}
	msg := "no report for " + FormatDuration(limit)
	next, err := Apply(prev, Report{State: ptrTo(Failed), Error: &msg}, now)
	if err != nil {
		return prev, err
	}
	// Not a report of the job's own: its last report stays what it was.
	last := prev.LastReport()
	next.ReportedAt = &last
	return next, nil
}

// Seconds turns a number of seconds (a create field) into a Duration,
// to the millisecond.
func Seconds(s float64) time.Duration {
	return time.Duration(math.Round(s*1000)) * time.Millisecond
}

// FormatDuration writes d as time.Duration does without the zero units
// at its end: 24h, 1h30m, 90s → 1m30s, 1.5s.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// checkLimit validates an optional create field in seconds.
func checkLimit(code, field string, v *float64) (float64, error) {
	if v == nil {
		return 0, nil
	}
	if math.IsNaN(*v) || math.IsInf(*v, 0) || *v <= 0 || *v > MaxLimitSeconds {
		return 0, errorf(code, "%s must be a number of seconds > 0 and at most %d (a year), got %v; leave it out for none", field, MaxLimitSeconds, *v)
	}
	if *v < 0.001 {
		return 0.001, nil // a millisecond: what a deadline can hold
	}
	return *v, nil
}

// checkLifecycle validates the create fields of this file into s.
func checkLifecycle(j *NewJob, s *Snapshot) error {
	var err error
	if s.StallAfter, err = checkLimit(CodeInvalidStallAfter, "stall_after_seconds", j.StallAfter); err != nil {
		return err
	}
	if s.AbandonAfter, err = checkLimit(CodeInvalidAbandonAfter, "abandon_after_seconds", j.AbandonAfter); err != nil {
		return err
	}
	if s.AbandonAfter > 0 && j.Pipeline != "" {
		return errorf(CodeInvalidAbandonAfter, "abandon_after_seconds is for jobs that workers report on; a pipeline job is bounded by its stages' timeouts")
	}
	if j.MaxAttempts < 0 {
		return errorf(CodeInvalidJob, "max_attempts must be ≥ 1, got %d", j.MaxAttempts)
	}
	if j.MaxAttempts > 0 {
		s.Attempt, s.MaxAttempts = 1, j.MaxAttempts
	}
	return nil
}

// applyAttempt applies a report's attempt fields (the orchestrator's)
// to next.
func applyAttempt(next *Snapshot, r *Report) {
	if r.Attempt > 0 {
		next.Attempt = r.Attempt
		if r.MaxAttempts > 0 {
			next.MaxAttempts = r.MaxAttempts
		}
		next.RetryAt, next.Error = nil, nil // the retry it waited for has come
	}
	if r.Retry != nil {
		next.RetryAt = At(r.Retry.At).Ptr()
		msg := r.Retry.Error
		next.Error = &msg
	}
}

func ptrTo[T any](v T) *T { return &v }
