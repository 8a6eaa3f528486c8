package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"

	"github.com/progressd/progressd/internal/progress"
)

// orphanError is the attempt error recorded on a job that was running when
// its node died; the next attempt's message says so.
const orphanError = "progressd: the node running this job stopped before the job finished"

// recoverBatch is how many queue rows recovery handles at a time.
const recoverBatch = 100

// recoverJobs runs once at Start, before any job is worked, and leaves no job
// "running" that nothing runs:
//
//  1. Commands a dead previous process left running are killed (their
//     process groups were recorded in the running/ directory).
//  2. Queue rows still marked running are orphans — this process holds the
//     queue's lock, so no other process is working them. Each is retried
//     if it has attempts left (its next attempt says "the node running it
//     stopped"), and otherwise failed with an error that says so.
//  3. Unfinished pipeline jobs with no queue row (the node died between
//     recording a job and queuing it, or the queue file was removed) are
//     queued again if they never started, and failed if they had.
//
// A job left running by a crash is therefore retried or failed as soon as
// a node starts on the same data directory.
//
// With the PostgreSQL queue (shared.go) only steps 1 and 3 run here: other
// nodes may be running the rows marked running, so those of dead nodes are
// found by their missing heartbeat instead, by whichever node sees it
// first, and step 3 leaves alone jobs created shortly before this start
// (another node may be queuing them right now).
func (o *Orchestrator) recoverJobs(ctx context.Context) error {
	o.killLeftovers()
	var retried, failed int
	if o.shared == nil {
		var err error
		if retried, failed, err = o.recoverOrphans(ctx); err != nil {
			return fmt.Errorf("recover jobs left running: %w", err)
		}
	}
	requeued, lost, err := o.reconcile(ctx)
	if err != nil {
		return fmt.Errorf("recover jobs missing from the queue: %w", err)
	}
	if retried+failed+requeued+lost > 0 {
		o.log.Warn("recovered jobs a stopped node left behind",
			"retried", retried, "failed", failed, "requeued", requeued, "lost", lost)
	}
	return nil
}

// killLeftovers kills the process groups recorded as running. A record is
// trusted only when its group leader still has the start time written
// beside its pid; otherwise the pid may belong to someone else by now.
func (o *Orchestrator) killLeftovers() {
	entries, err := os.ReadDir(o.runDir)
	if err != nil {
		o.log.Warn("read records of running commands", "dir", o.runDir, "err", err)
		return
	}
	for _, e := range entries {
		path := filepath.Join(o.runDir, e.Name())
		data, err := os.ReadFile(path)
		_ = os.Remove(path)
		if err != nil {
			continue
		}
		fields := strings.Fields(string(data))
		if len(fields) == 0 {
			continue
		}
		pgid, err := strconv.Atoi(fields[0])
		if err != nil || pgid <= 1 {
			continue
		}
		now, alive := procStartTime(pgid)
		switch {
		case !alive:
			continue // gone, or no /proc to tell
		case len(fields) < 2 || fields[1] != now:
			continue // the pid was reused
		}
		if err := signalGroup(pgid, sigKill); err != nil {
			o.log.Warn("kill command left running by a stopped node", "pgid", pgid, "err", err)
			continue
		}
		o.log.Warn("killed command left running by a stopped node", "pgid", pgid)
	}
}

func (o *Orchestrator) recoverOrphans(ctx context.Context) (retried, failed int, err error) {
	exec := o.driver.GetExecutor()
	horizon := time.Now().Add(24 * time.Hour) // every running row
	var after int64
	for {
		rows, err := exec.JobGetStuck(ctx, &riverdriver.JobGetStuckParams{AfterID: after, Max: recoverBatch, StuckHorizon: horizon})
		if err != nil {
			return retried, failed, err
		}
		if len(rows) == 0 {
			return retried, failed, nil
		}
		now := time.Now().UTC()
		params := &riverdriver.JobRescueManyParams{StuckHorizon: horizon}
		var effects []func()
		for _, row := range rows {
			after = row.ID
			state, finalized, effect := o.orphanDecision(ctx, row, now, "the node running it stopped")
			effects = append(effects, effect)
			switch state {
			case rivertype.JobStateAvailable:
				retried++
			case rivertype.JobStateDiscarded:
				failed++
			}
			errData, err := json.Marshal(rivertype.AttemptError{At: now, Attempt: max(row.Attempt, 0), Error: orphanError})
			if err != nil {
				return retried, failed, err
			}
			params.ID = append(params.ID, row.ID)
			params.Error = append(params.Error, errData)
			params.FinalizedAt = append(params.FinalizedAt, finalized)
			params.ScheduledAt = append(params.ScheduledAt, now)
			params.State = append(params.State, string(state))
		}
		if _, err := exec.JobRescueMany(ctx, params); err != nil {
			return retried, failed, err
		}
		for _, effect := range effects {
			effect()
		}
		if len(rows) < recoverBatch {
			return retried, failed, nil
		}
	}
}

// orphanDecision decides the fate of a queue row left running: retry it
// (available) if it has attempts left, fail it (discarded) if not, or
// close it (cancelled) if its job has finished or is gone. why says what
// happened to the node ("the node running it stopped"). effect reports the
// decision on the job; call it once the queue row is updated.
func (o *Orchestrator) orphanDecision(ctx context.Context, row *rivertype.JobRow, now time.Time, why string) (rivertype.JobState, *time.Time, func()) {
	var args pipelineArgs
	_ = json.Unmarshal(row.EncodedArgs, &args)
	snap, err := o.cfg.Jobs.Get(ctx, args.JobID)
	if err != nil || snap.State.Terminal() {
		return rivertype.JobStateCancelled, &now, func() {}
	}
	log := o.log.With("job", args.JobID, "attempt", row.Attempt, "max_attempts", row.MaxAttempts)
	if out, held := heldOutcome(row.Metadata); held {
		// The stages had ended; the node died while recording their
		// outcome. Make the row due again: its next worker records it.
		return rivertype.JobStateAvailable, nil, func() {
			log.Warn("job's outcome was being recorded on a node that stopped; recording it here", "outcome", out.State, "why", why)
		}
	}
	if row.Attempt < row.MaxAttempts {
		return rivertype.JobStateAvailable, nil, func() {
			log.Warn("job was running on a node that stopped; retrying it", "why", why)
			o.report(args.JobID, progress.Report{Message: ptr(fmt.Sprintf(
				"%s; retrying (attempt %d of %d)", why, row.Attempt+1, row.MaxAttempts))})
		}
	}
	stage := ""
	if snap.Stage != "" {
		stage = " during stage " + snap.Stage
	}
	msg := fmt.Sprintf("%s%s (attempt %d of %d); not retried", strings.Replace(why, "running it", "running this job", 1), stage, row.Attempt, row.MaxAttempts)
	if row.MaxAttempts == 1 {
		msg += ": set max_attempts in the pipeline to retry automatically"
	}
	return rivertype.JobStateDiscarded, &now, func() {
		log.Warn("job was running on a node that stopped; failing it: no attempts left", "why", why)
		o.fail(args.JobID, msg)
	}
}

// reconcile finds unfinished pipeline jobs that have no queue row.
func (o *Orchestrator) reconcile(ctx context.Context) (requeued, lost int, err error) {
	live := map[string]bool{}
	params := river.NewJobListParams().First(500).States(
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
		rivertype.JobStateRunning, rivertype.JobStateScheduled)
	for {
		res, err := o.river.JobList(ctx, params)
		if err != nil {
			return 0, 0, err
		}
		for _, row := range res.Jobs {
			var args pipelineArgs
			if json.Unmarshal(row.EncodedArgs, &args) == nil {
				live[args.JobID] = true
			}
		}
		if len(res.Jobs) < 500 {
			break
		}
		params = params.After(res.LastCursor)
	}

	horizon := o.startedAt
	if o.shared != nil {
		horizon = horizon.Add(-sharedQueueGrace)
	}
	q := progress.Query{States: []progress.State{progress.Queued, progress.Running}, Limit: 500}
	for {
		page, next, err := o.cfg.Jobs.List(ctx, q)
		if err != nil {
			return requeued, lost, err
		}
		for _, snap := range page {
			// Jobs created since this node started are being queued now.
			if snap.Pipeline == "" || live[snap.JobID] || !snap.CreatedAt.Before(horizon) {
				continue
			}
			if snap.State == progress.Queued {
				if err := o.enqueue(ctx, snap); err != nil {
					if errors.Is(err, context.Canceled) {
						return requeued, lost, err
					}
					o.fail(snap.JobID, "could not queue the job again after a restart: "+err.Error())
					lost++
					continue
				}
				o.log.Warn("job was missing from the queue; queued it again", "job", snap.JobID)
				requeued++
				continue
			}
			o.log.Warn("running job has no queue entry; failing it", "job", snap.JobID)
			o.fail(snap.JobID, "the job's entry in the queue was lost when the server stopped (was "+QueueFile+" removed?); submit it again")
			lost++
		}
		if next == "" {
			return requeued, lost, nil
		}
		q.Cursor = next
	}
}
