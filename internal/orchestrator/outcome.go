package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/progress"
)

// Once a job's commands have ended, its outcome — succeeded, or failed with
// its error — must reach the job's record even if a store is down at that
// moment (Redis restarting, the database's disk full): otherwise the job
// would look running for ever, and the next start would fail it for a
// reason that is not true. So the River row holds the outcome until it has
// landed. An attempt tries to apply it for about a second and a half; if it
// cannot, it writes the outcome into the row's metadata and snoozes the row
// (which uses up no attempt). When the row comes due again — on this node
// or, with the shared queue, any node, and after a restart too — the worker
// finds the outcome in the metadata and applies it instead of running the
// stages again, snoozing again for as long as the stores fail. The row is
// completed (or discarded, for a failure) only once jobs.Service.Finish has
// put the terminal snapshot in the durable store.
//
// A retry needs no holding: the row itself, retryable with the attempt's
// error, is the durable record, and the next attempt reports on the job.

// outcomeKey is the River metadata key of a held outcome.
const outcomeKey = "progressd_outcome"

// maxOutcomeDelay caps the wait between tries of a held outcome, so that
// a job shows its outcome at most this long after the stores are back.
const maxOutcomeDelay = 10 * time.Second

// outcome is a job's final state as its attempt ended, as held in the row.
type outcome struct {
	State progress.State `json:"state"` // succeeded or failed
	Error string         `json:"error,omitempty"`
}

// heldOutcome returns the outcome an earlier attempt of job left in its
// row, if any.
func heldOutcome(metadata []byte) (outcome, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(metadata, &m) != nil || m[outcomeKey] == nil {
		return outcome{}, false
	}
	var out outcome
	if json.Unmarshal(m[outcomeKey], &out) != nil || !out.State.Terminal() {
		return outcome{}, false
	}
	return out, true
}

// settle applies out to the job and returns what River should do with the
// row: result once the outcome has landed (nil completes the row, an error
// discards it), or a snooze that holds the outcome in the row until it can
// land.
func (o *Orchestrator) settle(ctx context.Context, job *river.Job[pipelineArgs], out outcome, result error, log *slog.Logger) error {
	id := job.Args.JobID
	r := progress.Report{State: ptr(out.State)}
	if out.Error != "" {
		r.Error = ptr(out.Error)
	}
	snap, err := o.finishJob(id, r)
	var pe *progress.Error
	if errors.As(err, &pe) || errors.Is(err, jobs.ErrNotFound) {
		// It can never land: the job is gone, or the report is refused.
		log.Warn("job ended but its outcome was refused", "outcome", out.State, "err", err)
		return result
	}
	if err != nil {
		delay := o.outcomeDelay(job.Metadata)
		if merr := river.MetadataSet(ctx, outcomeKey, out); merr != nil {
			// Only outside a worker; never here. Without the metadata the
			// row would run the job again, so fail loudly instead.
			log.Error("cannot hold the job's outcome in its queue row", "err", merr)
			return merr
		}
		log.Warn("job ended but its outcome cannot be recorded now; holding it in the queue and trying again",
			"outcome", out.State, "err", err, "in", delay)
		o.metrics.attempt("held")
		return river.JobSnooze(delay)
	}
	switch {
	case snap.State != out.State:
		log.Info("job was canceled as it finished", "state", snap.State)
		o.metrics.attempt("canceled")
		return nil
	case out.State == progress.Succeeded:
		log.Info("job succeeded")
		o.metrics.attempt("succeeded")
	default:
		log.Warn("job failed", "err", out.Error)
		o.metrics.attempt("failed")
	}
	return result
}

// finishJob calls jobs.Service.Finish up to three times (tryStore): a
// store that blinked is back by then, and a held outcome costs a write to
// the queue and a wait of at least a second.
func (o *Orchestrator) finishJob(id string, r progress.Report) (snap progress.Snapshot, err error) {
	err = tryStore(3, func(ctx context.Context) error {
		snap, err = o.cfg.Jobs.Finish(ctx, id, r)
		return err
	})
	return snap, err
}

// outcomeDelay is the wait before the next try of a held outcome: the
// retry backoff, doubling with each snooze of the row, up to
// maxOutcomeDelay.
func (o *Orchestrator) outcomeDelay(metadata []byte) time.Duration {
	var m struct {
		Snoozes int `json:"snoozes"`
	}
	_ = json.Unmarshal(metadata, &m)
	return min((&retryPolicy{base: o.cfg.RetryBackoff}).delay(m.Snoozes+1), maxOutcomeDelay)
}
