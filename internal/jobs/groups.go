package jobs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
)

// checkParent validates req's parent for a new child and returns the
// child's root: the parent exists and the caller may see it (else
// CodeParentNotFound, answered 404 like any invisible job), is not
// terminal (CodeParentFinished, 409), is in the child's project
// (CodeInvalidParent, 400) and is not at the deepest level (CodeTooDeep,
// 400). A cycle cannot be built: a child is new, so nothing can already
// be below it.
func (s *Service) checkParent(ctx context.Context, req *CreateRequest) (root string, err error) {
	parent, err := s.Get(ctx, req.ParentID)
	if errors.Is(err, ErrNotFound) || err == nil && req.MaySee != nil && !req.MaySee(parent) {
		return "", &progress.Error{Code: progress.CodeParentNotFound,
			Message: fmt.Sprintf("parent %s: no such job, or it is not yours to use as a parent", req.ParentID)}
	}
	if err != nil {
		return "", err
	}
	if parent.State.Terminal() {
		return "", parentFinished(parent.JobID, parent.State)
	}
	if req.Project == "" {
		req.Project = parent.Project
	}
	if req.Project != parent.Project {
		return "", &progress.Error{Code: progress.CodeInvalidParent,
			Message: fmt.Sprintf("a child is in its parent's project %q, not %q: drop \"project\" or send the parent's", parent.Project, req.Project)}
	}
	depth := 1 // of the parent: 1 for a root
	for up := parent; up.ParentID != ""; depth++ {
		if depth >= progress.MaxDepth {
			break
		}
		if up, err = s.Get(ctx, up.ParentID); err != nil {
			return "", fmt.Errorf("jobs: read an ancestor of %s: %w", parent.JobID, err)
		}
	}
	if depth >= progress.MaxDepth {
		return "", &progress.Error{Code: progress.CodeTooDeep,
			Message: fmt.Sprintf("parent %s is at depth %d: jobs nest at most %d deep (a root and %d levels of children)",
				parent.JobID, depth, progress.MaxDepth, progress.MaxDepth-1)}
	}
	if parent.RootID != "" {
		return parent.RootID, nil
	}
	return parent.JobID, nil
}

func parentFinished(id string, st progress.State) *progress.Error {
	return &progress.Error{Code: progress.CodeParentFinished,
		Message: fmt.Sprintf("parent %s has %s: a finished job takes no new children", id, st)}
}

// createError maps the durable store's verdict on a child's parent.
func createError(parentID string, err error) error {
	switch {
	case errors.Is(err, store.ErrParentFinished):
		return parentFinished(parentID, "finished")
	case errors.Is(err, store.ErrParentNotFound):
		return &progress.Error{Code: progress.CodeParentNotFound, Message: fmt.Sprintf("parent %s: no such job", parentID)}
	}
	return unavailable("record new job", err)
}

// pipelineName is a pipeline job's default title: the pipeline and its
// params, cut to the title's limit.
func pipelineName(pipeline string, params map[string]string) string {
	var b strings.Builder
	b.WriteString(pipeline)
	for _, k := range slices.Sorted(maps.Keys(params)) {
		b.WriteString(" " + k + "=" + params[k])
	}
	name := []rune(b.String())
	if len(name) > progress.MaxJobNameRunes {
		name = append(name[:progress.MaxJobNameRunes-1], '…')
	}
	return string(name)
}

// cascade cancels every non-terminal descendant of job id, children first
// level by level; running commands get SIGTERM through Cancel. It is
// called after id itself is canceled, so no new child can join meanwhile.
func (s *Service) cascade(ctx context.Context, id, reason string) {
	q := progress.Query{Parent: id, States: []progress.State{progress.Queued, progress.Running}, Limit: progress.MaxLimit}
	for {
		page, next, err := s.cfg.DB.List(ctx, q)
		if err != nil {
			s.cfg.Log.Warn("cancel the children of a canceled job", "job", id, "err", err)
			return
		}
		for _, c := range page {
			_, err := s.Cancel(ctx, c.JobID, reason)
			if err != nil && !errors.Is(err, progress.ErrJobFinished) && !errors.Is(err, ErrNotFound) {
				s.cfg.Log.Warn("cancel a child of a canceled job", "job", c.JobID, "parent", id, "err", err)
			}
		}
		if next == "" {
			return
		}
		q.Cursor = next
	}
}

// reloadAggregate rebuilds the aggregate of a parent read back from the
// durable store, which keeps no aggregate (it is not in the wire form):
// the totals are durable, and the live sum is recounted once, from the
// active children's stored progress plus the terminal ones' durable
// share. Later changes move it by their deltas.
func (s *Service) reloadAggregate(ctx context.Context, snap *progress.Snapshot) error {
	t, err := s.cfg.DB.ChildTotals(ctx, snap.JobID)
	if err != nil || t.Version == 0 {
		return err
	}
	live, err := s.cfg.DB.ActiveChildProgress(ctx, snap.JobID)
	if err != nil {
		return err
	}
	snap.Agg = progress.Aggregate{Version: t.Version, WeightSum: t.WeightSum, DoneWP: t.DoneWP, Live: live + t.DoneWP}
	c := t.Counts
	snap.Children = &c
	return nil
}
