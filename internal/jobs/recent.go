package jobs

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/snapshot"
)

// recentActivePage is how many unfinished jobs Recent reads from the
// durable store when the snapshot store is down: one page.
const recentActivePage = progress.MaxLimit

var (
	activeStates   = []progress.State{progress.Queued, progress.Running}
	finishedStates = []progress.State{progress.Succeeded, progress.Failed, progress.Canceled}
)

// Recent returns what a new subscriber of a project or an owner is sent
// first (SPEC.md, "WebSocket protocol"): the active jobs, newest first, at
// most snapshot.MaxRecentActive, then the most recently finished, at most
// limit, most recently finished first. f.Owner set with f.Project narrows
// the project to that owner's jobs: what a user who is not an admin may
// see of it, so other users' jobs cannot crowd its own out of the limit.
//
// Active jobs come from the snapshot store, which holds every one of
// them: Warm loads them at start, and again when Redis comes back (it may
// have restarted empty). Finished jobs come from both stores: the
// snapshot store keeps none after a restart and forgets them after a
// while, and what a subscriber sees must not depend on that, so the
// durable store's newest finished jobs of the project or owner are merged
// in, each job at the highest seq either store has. Reading the durable
// store's unfinished jobs every time was measured and left out: with few
// of them among 100,000 finished jobs of a project, SQLite scans the
// whole project (335 ms), while the newest finished ones are a short walk
// of its index (0.07 ms). Only when the snapshot store fails are they read
// from there. A store that fails is logged and left out; only when both
// fail is the error returned.
func (s *Service) Recent(ctx context.Context, f progress.Filter, limit int) ([]progress.Snapshot, error) {
	if f.Parent != "" || f.Tag != "" {
		return s.recentFromDB(ctx, f, limit)
	}
	sf := f
	if f.Project != "" {
		sf.Owner = "" // the snapshot store indexes projects; the owner is filtered below
	}
	live, liveErr := s.cfg.Snapshots.Recent(ctx, sf, limit)
	q := progress.Query{Project: f.Project, Owner: f.Owner, States: finishedStates, Limit: limit}
	finished, _, dbErr := s.cfg.DB.List(ctx, q)
	var active []progress.Snapshot
	if liveErr != nil && dbErr == nil {
		s.cfg.Log.Debug("snapshot store: recent jobs failed; reading the database", "project", f.Project, "owner", f.Owner, "err", liveErr)
		q.States, q.Limit = activeStates, recentActivePage
		active, _, dbErr = s.cfg.DB.List(ctx, q)
	}
	switch {
	case dbErr != nil && liveErr != nil:
		return nil, unavailable("recent jobs", fmt.Errorf("snapshot store: %v; database: %w", liveErr, dbErr))
	case dbErr != nil:
		s.cfg.Log.Debug("database: recent jobs failed; sending what the snapshot store has", "project", f.Project, "owner", f.Owner, "err", dbErr)
		finished = nil
	}
	return mergeRecent(f.Owner, limit, live, active, finished), nil
}

// recentFromDB is Recent for the children of a job or the jobs with a tag,
// which only the durable store indexes: its pages, each job at the newest
// seq the snapshot store has (the durable copy may lag by the write-behind
// interval).
func (s *Service) recentFromDB(ctx context.Context, f progress.Filter, limit int) ([]progress.Snapshot, error) {
	q := progress.Query{Owner: f.Owner, Parent: f.Parent, Tag: f.Tag}
	q.States, q.Limit = activeStates, recentActivePage
	active, _, err := s.List(ctx, q)
	if err != nil {
		return nil, unavailable("recent jobs", err)
	}
	q.States, q.Limit = finishedStates, limit
	finished, _, err := s.List(ctx, q)
	if err != nil {
		return nil, unavailable("recent jobs", err)
	}
	return mergeRecent(f.Owner, limit, active, finished), nil
}

// mergeRecent merges lists of snapshots into Recent's answer: each job
// once, at its highest seq, only owner's jobs when owner is set.
func mergeRecent(owner string, limit int, lists ...[]progress.Snapshot) []progress.Snapshot {
	newest := make(map[string]progress.Snapshot)
	for _, list := range lists {
		for _, snap := range list {
			if owner != "" && snap.Owner != owner {
				continue
			}
			if have, ok := newest[snap.JobID]; !ok || snap.Seq > have.Seq {
				newest[snap.JobID] = snap
			}
		}
	}
	var active, finished []progress.Snapshot
	for _, snap := range newest {
		if snap.State.Terminal() {
			finished = append(finished, snap)
		} else {
			active = append(active, snap)
		}
	}
	// Ids are time-ordered: descending is newest first.
	slices.SortFunc(active, func(a, b progress.Snapshot) int { return strings.Compare(b.JobID, a.JobID) })
	if len(active) > snapshot.MaxRecentActive {
		active = active[:snapshot.MaxRecentActive]
	}
	slices.SortFunc(finished, func(a, b progress.Snapshot) int {
		return cmp.Or(finishedAt(b).Compare(finishedAt(a)), strings.Compare(b.JobID, a.JobID))
	})
	if limit > 0 && len(finished) > limit {
		finished = finished[:limit]
	}
	return append(active, finished...)
}

func finishedAt(s progress.Snapshot) time.Time {
	if s.FinishedAt == nil {
		return s.UpdatedAt.Time
	}
	return s.FinishedAt.Time
}
