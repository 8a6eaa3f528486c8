package snapshot

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"

	"github.com/progressd/progressd/internal/progress"
)

const memoryShards = 64

// Memory is the in-process Store. Jobs are spread over shards, each with its
// own mutex, so reports on different jobs rarely contend; the project and
// owner indexes sit behind one more mutex that only state changes take.
//
// Lock order: a shard's mu, then idxMu. Eviction, which needs shard locks,
// collects ids under idxMu and deletes them after releasing it.
type Memory struct {
	seed   maphash.Seed
	shards [memoryShards]memShard

	idxMu    sync.Mutex
	projects map[string]*recentIndex
	owners   map[string]*recentIndex
	finished []string // finished job ids, oldest first, for eviction
	opts     MemoryOptions
}

type memShard struct {
	mu   sync.Mutex
	jobs map[string]progress.Snapshot
}

// recentIndex is the jobs of one project or owner: all active ones, and the
// most recently finished, newest last.
type recentIndex struct {
	active   map[string]struct{}
	finished []string
}

// MemoryOptions bound how many finished jobs a Memory store keeps.
type MemoryOptions struct {
	// MaxFinished is how many finished jobs are kept in all; the oldest
	// are forgotten first. Default 10,000.
	MaxFinished int
	// RecentFinished is how many finished jobs each project and owner
	// index keeps for Recent. Default 50.
	RecentFinished int
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory(o MemoryOptions) *Memory {
	if o.MaxFinished <= 0 {
		o.MaxFinished = 10_000
	}
	if o.RecentFinished <= 0 {
		o.RecentFinished = 50
	}
	m := &Memory{
		seed:     maphash.MakeSeed(),
		projects: make(map[string]*recentIndex),
		owners:   make(map[string]*recentIndex),
		opts:     o,
	}
	for i := range m.shards {
		m.shards[i].jobs = make(map[string]progress.Snapshot)
	}
	return m
}

func (m *Memory) shard(id string) *memShard {
	return &m.shards[maphash.String(m.seed, id)%memoryShards]
}

// Put implements Store.
func (m *Memory) Put(_ context.Context, s progress.Snapshot) error {
	sh := m.shard(s.JobID)
	sh.mu.Lock()
	prev, ok := sh.jobs[s.JobID]
	if ok && prev.Seq >= s.Seq {
		sh.mu.Unlock()
		return nil
	}
	sh.jobs[s.JobID] = s
	evict := m.index(prev, ok, s)
	sh.mu.Unlock()
	m.evict(evict)
	return nil
}

// Update implements Store.
func (m *Memory) Update(_ context.Context, id string, fn func(progress.Snapshot) (progress.Snapshot, error)) (progress.Snapshot, error) {
	sh := m.shard(id)
	sh.mu.Lock()
	prev, ok := sh.jobs[id]
	if !ok {
		sh.mu.Unlock()
		return progress.Snapshot{}, ErrNotFound
	}
	next, err := fn(prev)
	if err != nil {
		sh.mu.Unlock()
		return progress.Snapshot{}, err
	}
	if next.Seq != prev.Seq+1 || next.JobID != id {
		sh.mu.Unlock()
		return progress.Snapshot{}, fmt.Errorf("snapshot: update of %s returned job %s seq %d after seq %d; it must return the same job at seq+1", id, next.JobID, next.Seq, prev.Seq)
	}
	sh.jobs[id] = next
	var evict []string
	if next.State != prev.State {
		evict = m.index(prev, true, next)
	}
	sh.mu.Unlock()
	m.evict(evict)
	return next, nil
}

// index records s (replacing prev if had) in the project and owner
// indexes, and returns finished jobs now over the bound. The caller holds
// the shard lock of s.
func (m *Memory) index(prev progress.Snapshot, had bool, s progress.Snapshot) []string {
	if had && prev.State == s.State {
		return nil
	}
	m.idxMu.Lock()
	defer m.idxMu.Unlock()
	for _, ix := range []*recentIndex{m.indexFor(m.projects, s.Project), m.indexFor(m.owners, s.Owner)} {
		if !s.State.Terminal() {
			ix.active[s.JobID] = struct{}{}
			continue
		}
		delete(ix.active, s.JobID)
		if had && prev.State.Terminal() {
			continue // already listed as finished
		}
		ix.finished = append(ix.finished, s.JobID)
		if n := len(ix.finished) - m.opts.RecentFinished; n > 0 {
			ix.finished = slices.Delete(ix.finished, 0, n)
		}
	}
	if !s.State.Terminal() || had && prev.State.Terminal() {
		return nil
	}
	m.finished = append(m.finished, s.JobID)
	n := len(m.finished) - m.opts.MaxFinished
	if n <= 0 {
		return nil
	}
	evict := slices.Clone(m.finished[:n])
	m.finished = slices.Delete(m.finished, 0, n)
	return evict
}

func (m *Memory) indexFor(in map[string]*recentIndex, key string) *recentIndex {
	ix := in[key]
	if ix == nil {
		ix = &recentIndex{active: make(map[string]struct{})}
		in[key] = ix
	}
	return ix
}

// Delete implements Store; only finished jobs are deleted (as evict).
func (m *Memory) Delete(_ context.Context, id string) error {
	m.evict([]string{id})
	return nil
}

// evict forgets finished jobs over the bound, with no index lock held.
func (m *Memory) evict(ids []string) {
	for _, id := range ids {
		sh := m.shard(id)
		sh.mu.Lock()
		s, ok := sh.jobs[id]
		if ok && s.State.Terminal() {
			delete(sh.jobs, id)
		}
		sh.mu.Unlock()
		if !ok {
			continue
		}
		m.idxMu.Lock()
		for _, ix := range []struct {
			in  map[string]*recentIndex
			key string
		}{{m.projects, s.Project}, {m.owners, s.Owner}} {
			r := ix.in[ix.key]
			if r == nil {
				continue
			}
			r.finished = slices.DeleteFunc(r.finished, func(f string) bool { return f == id })
			if len(r.active) == 0 && len(r.finished) == 0 {
				delete(ix.in, ix.key)
			}
		}
		m.idxMu.Unlock()
	}
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, id string) (progress.Snapshot, error) {
	sh := m.shard(id)
	sh.mu.Lock()
	s, ok := sh.jobs[id]
	sh.mu.Unlock()
	if !ok {
		return progress.Snapshot{}, ErrNotFound
	}
	return s, nil
}

// Recent implements Store.
func (m *Memory) Recent(ctx context.Context, f progress.Filter, limit int) ([]progress.Snapshot, error) {
	in, key := m.projects, f.Project
	if f.Project == "" {
		in, key = m.owners, f.Owner
	}
	m.idxMu.Lock()
	var active, finished []string
	if ix := in[key]; ix != nil {
		for id := range ix.active {
			active = append(active, id)
		}
		finished = slices.Clone(ix.finished)
	}
	m.idxMu.Unlock()

	// Ids are time-ordered: sorting them descending is newest first.
	slices.SortFunc(active, func(a, b string) int { return strings.Compare(b, a) })
	if len(active) > MaxRecentActive {
		active = active[:MaxRecentActive]
	}
	slices.Reverse(finished)
	if limit > 0 && len(finished) > limit {
		finished = finished[:limit]
	}
	out := make([]progress.Snapshot, 0, len(active)+len(finished))
	for _, id := range append(active, finished...) {
		if s, err := m.Get(ctx, id); err == nil {
			out = append(out, s)
		}
	}
	return out, nil
}

// Ping implements Store; memory always answers.
func (m *Memory) Ping(context.Context) error { return nil }

// Close implements Store.
func (m *Memory) Close() error { return nil }
