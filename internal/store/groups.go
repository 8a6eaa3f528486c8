package store

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/progressd/progressd/internal/progress"
)

// Errors of Create for a child job. The service checks the parent before
// creating; the store checks again inside the insert's transaction, so a
// parent that finished in between is caught where it cannot race.
var (
	ErrParentNotFound = errors.New("store: the parent job does not exist")
	ErrParentFinished = errors.New("store: the parent job has finished")
)

// GroupMark names a parent whose durable totals changed (version) and
// have not been marked as applied to its snapshot since.
type GroupMark struct {
	Parent  string
	Version int64
}

// ProjectCursor is the cursor after a project whose last activity was at
// atMS: the list is ordered by (last activity, project), newest first.
func ProjectCursor(atMS int64, project string) string {
	return strconv.FormatInt(atMS, 10) + ":" + project
}

// ParseProjectCursor reads a ProjectCursor.
func ParseProjectCursor(c string) (int64, string, error) {
	ms, project, ok := strings.Cut(c, ":")
	at, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil || project == "" {
		return 0, "", fmt.Errorf("%w: cursor %q is not one this server gave out", progress.ErrBadCursor, c)
	}
	return at, project, nil
}

// Tally collects what one write does to the durable counters: per parent
// (its children by state, weight sums) and per project and per project and
// owner (jobs by state, last activity). The SQL stores apply it in the
// transaction of the write itself, which is what keeps the counters exact:
// a child's state change and its parent's count change commit together or
// not at all, on whichever node, however many nodes write.
type Tally struct {
	Groups   map[string]*GroupDelta
	Owners   map[OwnerKey]*ProjectDelta
	Projects map[string]*ProjectDelta
}

// OwnerKey is a (project, owner) pair.
type OwnerKey struct{ Project, Owner string }

// GroupDelta is the change to one parent's totals.
type GroupDelta struct {
	Changes   int64 // added to the version
	Counts    progress.Children
	WeightSum float64
	DoneWP    float64
}

// ProjectDelta is the change to one project's (or project and owner's) row.
type ProjectDelta struct {
	Counts       progress.JobCounts
	LastActivity int64 // Unix ms; the row keeps the highest
}

// NewTally returns an empty Tally.
func NewTally() *Tally {
	return &Tally{Groups: map[string]*GroupDelta{}, Owners: map[OwnerKey]*ProjectDelta{}, Projects: map[string]*ProjectDelta{}}
}

// Created counts a new job.
func (t *Tally) Created(s *progress.Snapshot) {
	t.touch(s.Project, s.Owner, s.UpdatedAt.UnixMilli(), s.State, 1)
	if s.ParentID != "" {
		g := t.group(s.ParentID)
		g.Changes++
		g.Counts.Total++
		g.Counts.Add(s.State, 1)
		g.WeightSum += s.Weight
	}
}

// Moved counts a job of parent (weight) going from state from to the
// state of s; Touched is enough when the state is the same.
func (t *Tally) Moved(parent string, weight float64, from progress.State, s *progress.Snapshot) {
	if from == s.State {
		t.Touched(s)
		return
	}
	t.touch(s.Project, s.Owner, s.UpdatedAt.UnixMilli(), from, -1)
	t.touch(s.Project, s.Owner, s.UpdatedAt.UnixMilli(), s.State, 1)
	if parent == "" {
		return
	}
	g := t.group(parent)
	g.Changes++
	g.Counts.Add(from, -1)
	g.Counts.Add(s.State, 1)
	if s.State.Terminal() && !from.Terminal() {
		g.DoneWP += weight * s.Progress
	}
}

// Left counts a deleted child s (terminal) out of its parent's totals:
// its count, its weight and its share of the terminal children's sum.
func (t *Tally) Left(s *progress.Snapshot) {
	g := t.group(s.ParentID)
	g.Changes++
	g.Counts.Total--
	g.Counts.Add(s.State, -1)
	g.WeightSum -= s.Weight
	g.DoneWP -= progress.LiveContribution(s)
}

// Touched records activity on s's project without a state change.
func (t *Tally) Touched(s *progress.Snapshot) {
	t.touch(s.Project, s.Owner, s.UpdatedAt.UnixMilli(), "", 0)
}

func (t *Tally) touch(project, owner string, at int64, st progress.State, n int) {
	for _, d := range []*ProjectDelta{t.owner(OwnerKey{project, owner}), t.project(project)} {
		d.Counts.Add(st, n)
		d.LastActivity = max(d.LastActivity, at)
	}
}

func (t *Tally) group(id string) *GroupDelta    { return entry(t.Groups, id) }
func (t *Tally) owner(k OwnerKey) *ProjectDelta { return entry(t.Owners, k) }
func (t *Tally) project(p string) *ProjectDelta { return entry(t.Projects, p) }

// entry returns m[k], adding a zero value first if there is none.
func entry[K comparable, V any](m map[K]*V, k K) *V {
	v := m[k]
	if v == nil {
		v = new(V)
		m[k] = v
	}
	return v
}

// ReadProjects reads a page of progress.ProjectSummary rows of (project, queued,
// running, succeeded, failed, canceled, last activity ms) selected with
// LIMIT size+1, as ReadPage reads jobs.
func ReadProjects(rows Rows, size int) ([]progress.ProjectSummary, string, error) {
	out := make([]progress.ProjectSummary, 0, min(size, 64))
	more := false
	var lastMS int64
	for rows.Next() {
		if len(out) == size {
			more = true
			continue
		}
		var p progress.ProjectSummary
		var ms int64
		c := &p.Jobs
		if err := rows.Scan(&p.Project, &c.Queued, &c.Running, &c.Succeeded, &c.Failed, &c.Canceled, &ms); err != nil {
			return nil, "", err
		}
		p.LastActivityAt = progress.At(time.UnixMilli(ms))
		lastMS = ms
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if more {
		next = ProjectCursor(lastMS, out[len(out)-1].Project)
	}
	return out, next, nil
}
