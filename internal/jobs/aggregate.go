package jobs

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/progressd/progressd/internal/progress"
)

// ParentInterval is the least time between two updates of a parent caused
// by its children: under a flood of child reports a parent changes at
// most this often (the spacing is read from the parent's own updated_at,
// so it holds across nodes too).
const ParentInterval = 100 * time.Millisecond

// aggregateTick is how soon after a child's change its parent is updated
// when the parent has not changed for ParentInterval.
const aggregateTick = 20 * time.Millisecond

// errTooSoon is the update function's refusal to change a parent that
// changed less than ParentInterval ago; the change waits.
var errTooSoon = errors.New("jobs: the parent changed less than ParentInterval ago")

// aggregator carries each child's change to its parent without reading
// the other children (SPEC "Groups"; docs/architecture.md, "Parents and
// children"). A child's change is reduced to a delta of its
// weight·progress and a flag saying its state moved; deltas of one parent
// add up here until the parent is next updated, at most every
// ParentInterval. The counts and the terminal children's sums are read
// from the durable store's per-parent totals, which every child's state
// change moves in its own transaction: they are exact and versioned, so
// no order of updates from any number of nodes can lose or double a count.
//
// It starts no goroutine of its own: a timer runs a flush when something
// is pending, and Close waits for a flush in progress.
type aggregator struct {
	s *Service

	mu      sync.Mutex
	pending map[string]*pendingParent
	timer   *time.Timer // armed while something is pending; nil otherwise
	recheck *time.Timer // the next look for parents left behind
	closed  bool
	// flushing is set while flushDue runs: one runs at a time, so that
	// parents' updates, which read the database, cannot pile up behind a
	// busy one (a single SQLite connection) and queue the reports' writes
	// behind them. The running one arms the timer again when it ends.
	flushing bool
	flushes  sync.WaitGroup
}

// pendingParent is what one parent is owed by its children's changes.
type pendingParent struct {
	delta     float64   // Σ of the children's weight·progress changes
	counts    bool      // a child's state moved: read the durable totals
	force     bool      // update even within ParentInterval (shutdown, recheck)
	notBefore time.Time // when the parent may next change
}

func newAggregator(s *Service) *aggregator {
	return &aggregator{s: s, pending: map[string]*pendingParent{}}
}

// observe records a child's change from prev to next (prev is the zero
// snapshot for a new child).
func (a *aggregator) observe(prev, next *progress.Snapshot) {
	a.observeFrom(prev.State, progress.LiveContribution(prev), next)
}

// observeFrom is observe given only what it needs of prev: its state and
// its live contribution to its parent.
func (a *aggregator) observeFrom(prevState progress.State, prevLive float64, next *progress.Snapshot) {
	if next.ParentID == "" {
		return
	}
	d := progress.LiveContribution(next) - prevLive
	moved := prevState != next.State
	if d == 0 && !moved {
		return
	}
	a.add(next.ParentID, &pendingParent{delta: d, counts: moved})
}

// add merges p into what parent is owed and makes sure a flush comes.
func (a *aggregator) add(parent string, p *pendingParent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if q := a.pending[parent]; q != nil {
		q.delta += p.delta
		q.counts = q.counts || p.counts
		q.force = q.force || p.force
		if p.notBefore.After(q.notBefore) {
			q.notBefore = p.notBefore
		}
	} else {
		a.pending[parent] = p
	}
	a.armLocked()
}

// armLocked starts the flush timer if something is pending and none is
// armed. a.mu must be held.
func (a *aggregator) armLocked() {
	if a.timer != nil || a.closed || len(a.pending) == 0 {
		return
	}
	wait := aggregateTick
	now := a.s.cfg.Now()
	first := true
	for _, p := range a.pending {
		w := max(aggregateTick, p.notBefore.Sub(now))
		if first || w < wait {
			wait, first = w, false
		}
	}
	a.flushes.Add(1)
	a.timer = time.AfterFunc(wait, func() {
		defer a.flushes.Done()
		a.flushDue(false)
	})
}

// flushDue updates every parent whose time has come (all, with all set).
func (a *aggregator) flushDue(all bool) {
	a.mu.Lock()
	a.timer = nil
	if a.flushing {
		a.mu.Unlock()
		return
	}
	a.flushing = true
	now := a.s.cfg.Now()
	due := map[string]*pendingParent{}
	for id, p := range a.pending {
		if all || p.force || !now.Before(p.notBefore) {
			due[id] = p
			delete(a.pending, id)
		}
	}
	a.mu.Unlock()
	for id, p := range due {
		if all {
			p.force = true
		}
		a.flush(id, p)
	}
	a.mu.Lock()
	a.flushing = false
	a.armLocked()
	a.mu.Unlock()
}

// flush applies p to parent id. What cannot be applied now is put back.
func (a *aggregator) flush(id string, p *pendingParent) bool {
	s := a.s
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := progress.ChildUpdate{LiveDelta: p.delta}
	if p.counts {
		t, err := s.cfg.DB.ChildTotals(ctx, id)
		if err != nil {
			s.cfg.Log.Warn("read a parent's children totals; will retry", "parent", id, "err", err)
			p.notBefore = s.cfg.Now().Add(ParentInterval)
			a.add(id, p)
			return false
		}
		u.Totals = &t
	}
	var notBefore time.Time
	prev, next, err := s.update(ctx, id, func(prev progress.Snapshot) (progress.Snapshot, error) {
		now := s.cfg.Now()
		if at := prev.UpdatedAt.Add(ParentInterval); !p.force && now.Before(at) && !prev.State.Terminal() {
			notBefore = at
			return prev, errTooSoon
		}
		return progress.ApplyChildren(prev, u, now)
	})
	switch {
	case err == nil:
		if err := s.commit(ctx, &prev, &next); err != nil {
			s.cfg.Log.Warn("record a parent's update from its children", "parent", id, "err", err)
		}
		return true
	case errors.Is(err, errTooSoon):
		p.notBefore = notBefore
		a.add(id, p)
	case errors.Is(err, progress.ErrUnchanged):
		return true
	case errors.Is(err, progress.ErrJobFinished), errors.Is(err, ErrNotFound):
		// A finished parent takes nothing more; a deleted one is gone.
	default:
		s.cfg.Log.Warn("update a parent from its children; will retry", "parent", id, "err", err)
		p.notBefore = s.cfg.Now().Add(ParentInterval)
		a.add(id, p)
	}
	return false
}

// recheckEvery looks for parents whose durable totals moved more than age
// ago without reaching their snapshot — the node that moved them died
// between its commit and its update of the parent, or the update failed —
// and brings them up to date. Any node does it for all, so a dead node's
// parents are corrected by the others or by its own restart.
func (a *aggregator) startRecheck(every time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || every <= 0 {
		return
	}
	a.flushes.Add(1)
	a.recheck = time.AfterFunc(every, func() {
		defer a.flushes.Done()
		a.recheckOnce(every)
		a.startRecheck(every)
	})
}

// recheckOnce is one pass of the recheck: parents whose totals changed
// more than age ago and are still marked.
func (a *aggregator) recheckOnce(age time.Duration) {
	s := a.s
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	marks, err := s.cfg.DB.DirtyGroups(ctx, s.cfg.Now().Add(-age), 256)
	if err != nil {
		s.cfg.Log.Warn("look for parents behind their children; will retry", "err", err)
		return
	}
	for _, m := range marks {
		snap, err := s.Get(ctx, m.Parent)
		behind := err == nil && !snap.State.Terminal() && snap.Agg.Version < m.Version
		if behind && !a.flush(m.Parent, &pendingParent{counts: true}) {
			continue // not applied: stays marked for the next pass
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			continue
		}
		if err := s.cfg.DB.CleanGroup(ctx, m.Parent, m.Version); err != nil {
			s.cfg.Log.Warn("mark a parent up to date", "parent", m.Parent, "err", err)
		}
	}
}

// close stops the timers, waits for a flush in progress and applies what
// is still pending, so a shutdown loses no child's change.
func (a *aggregator) close() {
	a.mu.Lock()
	a.closed = true
	for _, t := range []*time.Timer{a.timer, a.recheck} {
		if t != nil && t.Stop() {
			a.flushes.Done() // its function will not run
		}
	}
	a.timer, a.recheck = nil, nil
	a.mu.Unlock()
	a.flushes.Wait()
	// A flush that fails here is put back and lost with the process; the
	// durable totals stay marked and the next node's recheck applies them.
	a.flushDue(true)
}
