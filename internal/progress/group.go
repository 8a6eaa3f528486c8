package progress

import (
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// Limits of part two's job fields (SPEC "Groups", "Tags", "Names").
const (
	MaxJobNameRunes = 200 // a job's title, in characters
	MaxTags         = 16  // tags per job
	MaxTagBytes     = 64  // one tag
	// MaxDepth is how deep a tree of jobs may grow: a root and three
	// levels of children below it.
	MaxDepth = 4
)

// Error codes of part two. Like the others, clients match on them.
const (
	CodeInvalidTag         = "invalid_tag"         // a tag with a forbidden character, too long, too many
	CodeInvalidName        = "invalid_name"        // a title over MaxJobNameRunes or not UTF-8
	CodeInvalidWeight      = "invalid_weight"      // weight ≤ 0, not finite, or without a parent
	CodeInvalidExpected    = "invalid_expected"    // expected_children < 0
	CodeInvalidParent      = "invalid_parent"      // a parent in another project
	CodeTooDeep            = "too_deep"            // a child below the deepest level
	CodeParentNotFound     = "parent_not_found"    // unknown or invisible parent (404)
	CodeParentFinished     = "parent_finished"     // the parent is terminal (409)
	CodeChildrenUnfinished = "children_unfinished" // succeeded over children still queued or running (409)
)

// Children counts a parent's direct children by state.
type Children struct {
	Total     int `json:"total"`
	Queued    int `json:"queued"`
	Running   int `json:"running"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Canceled  int `json:"canceled"`
}

// Active is how many children are queued or running.
func (c Children) Active() int { return c.Queued + c.Running }

// Add moves n children into state st (n < 0 moves them out).
func (c *Children) Add(st State, n int) {
	addByState(st, n, &c.Queued, &c.Running, &c.Succeeded, &c.Failed, &c.Canceled)
}

// ChildTotals is the durable part of a parent's aggregate: exact counts
// and weight sums, kept by the durable store in the same transaction as
// each child's state change. Version grows with every change, so a parent
// never takes older totals over newer ones.
type ChildTotals struct {
	Version   int64
	Counts    Children
	WeightSum float64 // Σ weight of every child
	DoneWP    float64 // Σ weight·progress of the terminal children
}

// Aggregate is the state a parent keeps beside its snapshot to compute its
// progress from its children without reading them: the durable totals it
// last applied, and Live, the sum of weight·progress of all its children,
// moved by each child's change (old snapshot → new snapshot).
type Aggregate struct {
	Version   int64   `json:"version"`
	WeightSum float64 `json:"weight_sum"`
	DoneWP    float64 `json:"done_wp"`
	Live      float64 `json:"live"`
}

// LiveContribution is what a child in snapshot s adds to its parent's
// Live sum: weight·progress.
func LiveContribution(s *Snapshot) float64 {
	if s.ParentID == "" {
		return 0
	}
	return s.Weight * s.Progress
}

// ChildUpdate is what the aggregator brings to a parent in one update.
type ChildUpdate struct {
	// Totals, if newer than the parent's, replace its counts and sums.
	Totals *ChildTotals
	// LiveDelta is added to the Live sum: the children's changes since
	// the aggregator's last update of this parent.
	LiveDelta float64
	// Live, if set, replaces the Live sum (an exact recount).
	Live *float64
}

// ErrUnchanged is returned by ApplyChildren when the update would change
// nothing: the caller stores and publishes nothing.
var ErrUnchanged = errors.New("progress: the update changes nothing")

// ApplyChildren returns the parent's next snapshot after u, seq one higher.
// The rules (SPEC "Groups"):
//   - progress is the weighted mean of the children's progress, children
//     announced by expected_children but not created counting with weight
//     1 at 0; it goes to the whole job, or to the stage marked children,
//     and never down;
//   - a queued parent is running once a child has started;
//   - a parent without stages that announced N children finishes once N
//     are terminal and none is active: succeeded if all succeeded, else
//     failed with "k of N children failed".
//
// A terminal parent returns ErrJobFinished, an update that changes nothing
// ErrUnchanged; prev is returned unchanged with either.
func ApplyChildren(prev Snapshot, u ChildUpdate, now time.Time) (Snapshot, error) {
	if prev.State.Terminal() {
		return prev, ErrJobFinished
	}
	next := prev.Clone()
	agg := &next.Agg
	if u.Totals != nil && u.Totals.Version > agg.Version {
		agg.Version, agg.WeightSum, agg.DoneWP = u.Totals.Version, u.Totals.WeightSum, u.Totals.DoneWP
		c := u.Totals.Counts
		next.Children = &c
	}
	if u.Live != nil {
		agg.Live = *u.Live
	} else {
		agg.Live += u.LiveDelta
	}
	var ch Children
	if next.Children != nil {
		ch = *next.Children
	}
	mean := childMean(agg, ch, next.ExpectedChildren)
	if i := next.childrenStage(); i >= 0 {
		st := &next.Stages[i]
		if mean > st.Progress {
			st.Progress = mean
		}
		if st.State == Queued && ch.Total > ch.Queued {
			st.State = Running
		}
		if overall := weighted(next.Stages); overall > next.Progress {
			next.Progress = overall
		}
	} else if len(next.Stages) == 0 && mean > next.Progress {
		next.Progress = mean
	}

	at := At(now)
	if at.Before(prev.UpdatedAt.Time) {
		at = prev.UpdatedAt
	}
	if next.State == Queued && ch.Total > ch.Queued {
		next.State = Running
		next.StartedAt = at.Ptr()
	}
	if done := ch.Succeeded + ch.Failed + ch.Canceled; len(next.Stages) == 0 && next.ExpectedChildren > 0 &&
		done >= next.ExpectedChildren && ch.Active() == 0 {
		if failed := ch.Failed + ch.Canceled; failed == 0 {
			next.State, next.Progress = Succeeded, 1
		} else {
			msg := fmt.Sprintf("%d of %d children failed", failed, ch.Total)
			next.State, next.Error = Failed, &msg
		}
	}
	if !groupChanged(&prev, &next) {
		return prev, ErrUnchanged
	}
	next.Seq = prev.Seq + 1
	if next.ReportedAt == nil {
		// Not a report of the parent's own: its last report stays.
		next.ReportedAt = prev.UpdatedAt.Ptr()
	}
	next.UpdatedAt = at
	if next.State.Terminal() {
		next.FinishedAt = at.Ptr()
		next.ETASeconds = nil
		next.Rate = Rate{}
		return next, nil
	}
	if next.State == Running {
		next.Rate = prev.Rate.observe(next.Progress, at)
		next.ETASeconds = next.Rate.eta(next.Progress)
	}
	return next, nil
}

// childMean is the weighted mean of the children's progress. While a
// child is active it is Live, the sum of the deltas applied so far: each
// child's progress only grows and each delta is applied once, so Live is
// never above the truth (a delta still on its way, or lost with a node,
// leaves it low). Once no child is active it is the durable DoneWP, exact
// by construction. The two are never mixed: the durable sum may already
// hold a child's last change whose delta has not arrived.
func childMean(agg *Aggregate, ch Children, expected int) float64 {
	if agg.Version == 0 {
		// No totals yet (another node's deltas came first): without the
		// weights' sum the mean could come out above the truth.
		return 0
	}
	missing := float64(max(0, expected-ch.Total))
	den := agg.WeightSum + missing
	if !(den > 0) {
		return 0
	}
	sum := agg.Live
	if ch.Active() == 0 {
		sum = agg.DoneWP
	}
	m := sum / den
	if !(m > 0) { // also NaN
		return 0
	}
	return math.Min(1, m)
}

func groupChanged(a, b *Snapshot) bool {
	if a.State != b.State || a.Progress != b.Progress || a.Agg != b.Agg {
		return true
	}
	if (a.Children == nil) != (b.Children == nil) || a.Children != nil && *a.Children != *b.Children {
		return true
	}
	for i := range a.Stages {
		if a.Stages[i] != b.Stages[i] {
			return true
		}
	}
	return false
}

// childrenStage is the index of the stage marked children, or -1.
func (s *Snapshot) childrenStage() int {
	for i := range s.Stages {
		if s.Stages[i].Children {
			return i
		}
	}
	return -1
}

// CheckTag validates one tag: 1–64 bytes of A–Z a–z 0–9 : _ . -
func CheckTag(tag string) error {
	if tag == "" || len(tag) > MaxTagBytes {
		return errorf(CodeInvalidTag, "tag %q must be 1 to %d characters", tag, MaxTagBytes)
	}
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == ':' || c == '_' || c == '.' || c == '-') {
			return errorf(CodeInvalidTag, "tag %q: only letters A–Z a–z, digits and : _ . - are allowed (no spaces)", tag)
		}
	}
	return nil
}

// checkGroup validates the part-two fields of a new job.
func checkGroup(j *NewJob) error {
	if !utf8.ValidString(j.Name) {
		return errorf(CodeInvalidName, "name is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(j.Name); n > MaxJobNameRunes {
		return errorf(CodeInvalidName, "name is %d characters; the limit is %d", n, MaxJobNameRunes)
	}
	if len(j.Tags) > MaxTags {
		return errorf(CodeInvalidTag, "%d tags; the limit is %d", len(j.Tags), MaxTags)
	}
	for i, t := range j.Tags {
		if err := CheckTag(t); err != nil {
			return err
		}
		for _, u := range j.Tags[:i] {
			if u == t {
				return errorf(CodeInvalidTag, "tag %q is given twice", t)
			}
		}
	}
	if j.ExpectedChildren < 0 {
		return errorf(CodeInvalidExpected, "expected_children must be ≥ 0, got %d", j.ExpectedChildren)
	}
	if j.Weight != nil {
		w := *j.Weight
		if j.ParentID == "" {
			return errorf(CodeInvalidWeight, "weight is a child's share of its parent: send it with parent_id, or drop it")
		}
		if math.IsNaN(w) || math.IsInf(w, 0) || w <= 0 {
			return errorf(CodeInvalidWeight, "weight must be a finite number > 0, got %v", w)
		}
	}
	if j.ParentID != "" && j.RootID == "" {
		return errorf(CodeInvalidJob, "a child needs its root_id")
	}
	marked := 0
	for _, st := range j.Stages {
		if st.Children {
			marked++
		}
	}
	if marked > 1 {
		return errorf(CodeInvalidJob, "%d stages are marked children; at most one may be", marked)
	}
	return nil
}
