package jobs

import (
	"context"
	"slices"

	"github.com/progressd/progressd/internal/progress"
)

// jobChange is what a batch did to one job: what it needs of the
// snapshot before the job's first report in the batch (its state and its
// live contribution to a parent), and whether any report moved its state
// or began or ended a stall (then the job is written durably, as commit
// writes such a report alone). The newest snapshot is kept beside it, in
// a slice of its own, which is the write-behind's list as it is when no
// report moved a state.
type jobChange struct {
	firstState progress.State
	firstLive  float64
	moved      bool
	moves      []move // the reports that moved the state or the stall
}

// move is a report that moved its job's state.
type move struct {
	report   int
	from, to progress.State
}

// ReportMany applies reps in order, each exactly as ReportAs would apply
// it alone — same checks, same next snapshot and seq — and records them
// together: the snapshots of the jobs whose state moved (or whose stall
// began or ended) are written to
// the durable store in one transaction before ReportMany returns (a
// report's state change is durable before its caller hears of it, as
// alone), the others are left to the write-behind, and each job changed
// is published once, at its newest snapshot (subscribers may be sent the
// newest snapshot of a job in place of older ones; a state change is in
// every later snapshot, and a terminal one is always the newest). This is
// what makes a batch (POST /api/v1/reports) or a burst of WebSocket
// report frames cheaper per report than one report per request: one
// transaction and one publish per job per batch instead of one per
// report.
//
// If the durable write fails, every report that moved a state in it gets
// ErrUnavailable (its snapshot stays queued in the write-behind, which
// retries it) and its job is not published; the other reports stand.
func (s *Service) ReportMany(ctx context.Context, reps []progress.JobReport, allow func(progress.Snapshot) bool) []progress.Outcome {
	out := make([]progress.Outcome, len(reps))
	// The jobs changed, in the order first reported, and their newest
	// snapshots: a batch touches up to 1,000 jobs, and an allocation each
	// was a third of what a streamed report allocated.
	order := make([]jobChange, 0, min(len(reps), 64))
	last := make([]progress.Snapshot, 0, min(len(reps), 64))
	at := make(map[string]int, min(len(reps), 64)) // index in order
	a := s.newReportApply(allow)
	for i := range reps {
		next, err := s.applyOne(ctx, a, reps[i].JobID, reps[i].Report)
		if err != nil {
			out[i].Err = err
			continue
		}
		out[i].Seq = next.Seq
		k, ok := at[next.JobID]
		if !ok {
			k = len(order)
			at[next.JobID] = k
			order = append(order, jobChange{firstState: a.prev.State, firstLive: progress.LiveContribution(&a.prev)})
			last = append(last, progress.Snapshot{})
		}
		last[k] = next
		if c := &order[k]; a.prev.State != next.State || a.prev.Stalled != next.Stalled {
			c.moved = true
			c.moves = append(c.moves, move{report: i, from: a.prev.State, to: next.State})
		}
	}
	pending, durable := last, []progress.Snapshot(nil)
	if slices.ContainsFunc(order, func(c jobChange) bool { return c.moved }) {
		pending = make([]progress.Snapshot, 0, len(last))
		for k := range order {
			if order[k].moved {
				durable = append(durable, last[k])
			} else {
				pending = append(pending, last[k])
			}
		}
	}
	if err := s.cfg.DB.SaveMany(ctx, pending, durable); err != nil {
		err = s.reject(unavailable("record report", err))
		for k := range order {
			c := &order[k]
			if !c.moved {
				continue
			}
			for _, m := range c.moves {
				out[m.report] = progress.Outcome{Err: err}
			}
			last[k] = progress.Snapshot{} // not published: not recorded
		}
	}
	for k := range order {
		c, snap := &order[k], &last[k]
		if snap.JobID == "" {
			continue
		}
		for _, m := range c.moves {
			if m.from != m.to {
				s.cfg.Metrics.stateChanged(m.from, m.to)
			}
		}
		if snap.State.Terminal() && c.firstState != snap.State {
			s.endLogs(ctx, snap.JobID)
		}
		s.publish(ctx, *snap)
		s.agg.observeFrom(c.firstState, c.firstLive, snap)
	}
	return out
}
