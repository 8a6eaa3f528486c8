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

// maxPurgeBatches bounds one sweep; the next sweep continues.
const maxPurgeBatches = 2000

// Purge deletes jobs finished before before, store.PurgeBatch per
// transaction, and returns how many it deleted.
func (s *Service) Purge(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for range maxPurgeBatches {
		ids, err := s.cfg.DB.Purge(ctx, before, store.PurgeBatch)
		s.forget(ctx, ids)
		total += len(ids)
		s.cfg.Metrics.deleted.WithLabelValues("retention").Add(float64(len(ids)))
		if err != nil || len(ids) < store.PurgeBatch {
			return total, err
		}
	}
	return total, nil
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
