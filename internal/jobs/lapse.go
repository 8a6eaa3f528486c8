package jobs

import (
	"context"
	"errors"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
)

// Stalls and abandoned jobs (SPEC part two; the rules are
// progress/lifecycle.go's). Every node runs WatchLapses; the durable store
// finds the jobs due by an index on their deadlines (store/lapse.go), one
// node at a time on PostgreSQL, and each is changed through the snapshot
// store's atomic update, which checks the live snapshot again: a report
// that came after the durable copy was written wins, and a job is stalled
// or abandoned once however many nodes look. Nothing is kept in memory
// between sweeps, so a restart, or the death of the node that ran the job
// or took its reports, changes nothing: the deadlines are in the database.

// DefaultAbandonAfter is --abandon-after's default.
const DefaultAbandonAfter = 24 * time.Hour

// lapseBatch is the most jobs of each kind one sweep's query returns;
// lapseBatches bounds the queries of one sweep (the next continues).
const (
	lapseBatch   = 500
	lapseBatches = 20
)

// WatchLapses marks stalled jobs and fails abandoned ones every every,
// until ctx ends. abandonAfter is the server's limit for jobs without one
// of their own (0: none).
func (s *Service) WatchLapses(ctx context.Context, every, abandonAfter time.Duration) {
	tick(ctx, every, func() {
		if err := s.SweepLapses(ctx, abandonAfter); err != nil && ctx.Err() == nil {
			s.cfg.Log.Warn("looking for stalled and abandoned jobs failed; will retry", "err", err, "retry_in", every)
		}
	})
}

// SweepLapses acts once on every job whose stall or abandonment is due:
// a stall as it comes, an abandonment within store.IdleStep(abandonAfter)
// after it (under the job's own limit, as it comes). The durable store
// must have been given that step (Store.SetIdleStep), as node does.
func (s *Service) SweepLapses(ctx context.Context, abandonAfter time.Duration) error {
	for range lapseBatches {
		now := s.cfg.Now()
		q := store.LapseQuery{Now: now, Limit: lapseBatch}
		if abandonAfter > 0 {
			// The stored idle_since may be up to a step older than the
			// job's last change (store.IdleStep): asking for a step more
			// never finds a job before its limit.
			q.IdleBefore = now.Add(-abandonAfter - store.IdleStep(abandonAfter))
		}
		acted := 0
		err := s.cfg.DB.Lapsing(ctx, q, func(ids []string) error {
			for _, id := range ids {
				changed, err := s.lapse(ctx, id, abandonAfter)
				if err != nil {
					return err
				}
				if changed {
					acted++
				}
			}
			return nil
		})
		if err != nil || acted < lapseBatch {
			return err
		}
	}
	return nil
}

// lapse stalls or abandons job id if it is due now, and reports whether it
// changed it. A job that is not due (a report came after its durable copy
// was written) is left alone: its next durable write moves its deadline.
func (s *Service) lapse(ctx context.Context, id string, abandonAfter time.Duration) (bool, error) {
	now := s.cfg.Now()
	prev, next, err := s.update(ctx, id, func(prev progress.Snapshot) (progress.Snapshot, error) {
		next, err := progress.Abandon(prev, now, abandonAfter)
		if errors.Is(err, progress.ErrUnchanged) {
			return progress.Stall(prev, now)
		}
		return next, err
	})
	switch {
	case errors.Is(err, progress.ErrUnchanged), errors.Is(err, progress.ErrJobFinished), errors.Is(err, ErrNotFound):
		return false, nil
	case err != nil:
		return false, unavailable("stall or abandon a job", err)
	}
	if err := s.commit(ctx, &prev, &next); err != nil {
		return false, unavailable("record a stall or an abandoned job", err)
	}
	if next.State.Terminal() {
		s.cfg.Metrics.lapsed.WithLabelValues("abandoned").Inc()
		s.cfg.Log.Info("job abandoned", "job", id, "err", *next.Error)
	} else {
		s.cfg.Metrics.lapsed.WithLabelValues("stalled").Inc()
		s.cfg.Log.Debug("job stalled", "job", id, "stall_after_seconds", next.StallAfter)
	}
	return true, nil
}
