package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
)

// CodeNotFinished is the error code of a DELETE of a job that has not
// finished (409).
const CodeNotFinished = "job_not_finished"

// Delete deletes job id (SPEC.md part two, "Lifecycle") if allow accepts
// it (nil: any; else ErrNotFound, as for another user's job) and it is
// terminal (else a *progress.Error with CodeNotFinished): from the
// durable store with its tags and log lines first, then from the snapshot
// store. A terminal job changes no more, so nothing is published after
// it: its subscribers get nothing more, and a report racing the delete is
// refused as for a finished job (409) or, once it is gone, 404.
func (s *Service) Delete(ctx context.Context, id string, allow func(progress.Snapshot) bool) error {
	snap, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	if allow != nil && !allow(snap) {
		return ErrNotFound
	}
	if !snap.State.Terminal() {
		return &progress.Error{Code: CodeNotFinished,
			Message: fmt.Sprintf("job %s is %s: only a finished job can be deleted; cancel it first", id, snap.State)}
	}
	switch err := s.cfg.DB.Delete(ctx, id); {
	case errors.Is(err, store.ErrNotFound):
		return ErrNotFound // deleted meanwhile, by another request or the retention sweep
	case err != nil:
		return unavailable("delete job", err)
	}
	s.leaveParent(store.Deleted{ID: id, Parent: snap.ParentID, Share: progress.LiveContribution(&snap)})
	s.forget(ctx, []string{id})
	s.cfg.Metrics.deleted.WithLabelValues("request").Inc()
	return nil
}

// forget drops deleted jobs from the snapshot and log stores. A failure
// only delays that: finished jobs leave those stores by themselves.
func (s *Service) forget(ctx context.Context, ids []string) {
	for _, id := range ids {
		if err := s.cfg.Snapshots.Delete(ctx, id); err != nil {
			s.cfg.Log.Warn("deleted job stays in the snapshot store until it ages out", "job", id, "err", err)
		}
		if err := s.cfg.Logs.Drop(ctx, id); err != nil {
			s.cfg.Log.Debug("dropping a deleted job's log ring failed", "job", id, "err", err)
		}
	}
}

// Purge deletes jobs finished before before, in short batches spaced so
// that reports' writes go between them (store.PurgePaced), and returns how
// many it deleted.
func (s *Service) Purge(ctx context.Context, before time.Time) (int, error) {
	return store.PurgePaced(ctx, s.cfg.DB, before, func(gone []store.Deleted) {
		ids := make([]string, len(gone))
		for i, d := range gone {
			ids[i] = d.ID
			s.leaveParent(d)
		}
		s.forget(ctx, ids)
		s.cfg.Metrics.deleted.WithLabelValues("retention").Add(float64(len(ids)))
	})
}

// leaveParent takes a deleted child out of its parent's snapshot: the
// store moved the parent's durable totals in the delete's transaction
// (the counts drop the child, so they agree with GET ?parent= and a
// parent that expects N children waits for N that exist), and the
// aggregator applies them with the child's share taken out of the live
// sum. A parent that has finished keeps its snapshot: a terminal
// snapshot never changes, and its error ("3 of 200 children failed")
// was written from those counts.
func (s *Service) leaveParent(d store.Deleted) {
	if d.Parent != "" {
		s.agg.add(d.Parent, &pendingParent{delta: -d.Share, counts: true})
	}
}

// SweepInterval is how often a retention of d is swept: every minute, or
// as often as d itself when that is shorter (SPEC.md part two).
func SweepInterval(d time.Duration) time.Duration {
	return max(min(d, time.Minute), 10*time.Millisecond)
}

// RetainFor deletes jobs finished longer ago than retention, every
// SweepInterval(retention), until ctx ends. Nodes sharing a database may
// all run it: PostgreSQL lets one sweep at a time, SQLite one writer.
func (s *Service) RetainFor(ctx context.Context, retention time.Duration) {
	every := SweepInterval(retention)
	tick(ctx, every, func() {
		n, err := s.Purge(ctx, s.cfg.Now().Add(-retention))
		switch {
		case err != nil && ctx.Err() == nil:
			s.cfg.Log.Warn("deleting old finished jobs failed; will retry", "deleted", n, "err", err, "retry_in", every)
		case n > 0:
			s.cfg.Log.Info("deleted finished jobs past the retention", "count", n, "retention", retention)
		}
	})
}
