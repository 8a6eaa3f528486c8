package logs

import (
	"context"
	"sync"

	"github.com/progressd/progressd/internal/progress"
)

// Memory is the Store of a single node: one ring per running job.
type Memory struct {
	keep int

	mu    sync.RWMutex
	rings map[string]*ring
}

var _ Store = (*Memory)(nil)

// ring is one job's kept lines: a circular buffer of up to keep lines.
type ring struct {
	mu    sync.Mutex
	lines []progress.LogLine // len ≤ keep; lines[start] is the oldest once full
	start int
	last  int64
}

// NewMemory returns a Memory keeping the last keep lines per job
// (progress.DefaultLogLines if keep ≤ 0).
func NewMemory(keep int) *Memory {
	if keep <= 0 {
		keep = progress.DefaultLogLines
	}
	return &Memory{keep: keep, rings: map[string]*ring{}}
}

func (m *Memory) ring(job string) *ring {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.rings[job]
}

// Append numbers and keeps lines.
func (m *Memory) Append(_ context.Context, job string, lines []progress.LogLine) ([]progress.LogLine, error) {
	r := m.ring(job)
	if r == nil {
		return nil, ErrUnknown
	}
	out := make([]progress.LogLine, len(lines))
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, l := range lines {
		r.last++
		l.N = r.last
		out[i] = l
		r.push(l, m.keep)
	}
	return out, nil
}

func (r *ring) push(l progress.LogLine, keep int) {
	if len(r.lines) < keep {
		r.lines = append(r.lines, l)
		return
	}
	r.lines[r.start] = l
	r.start = (r.start + 1) % len(r.lines)
}

// Seed creates the job's ring unless it exists.
func (m *Memory) Seed(_ context.Context, job string, lines []progress.LogLine, last int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.rings[job]; ok {
		return nil
	}
	r := &ring{last: last}
	if len(lines) > m.keep {
		lines = lines[len(lines)-m.keep:]
	}
	for _, l := range lines {
		r.push(l, m.keep)
	}
	m.rings[job] = r
	return nil
}

// Read returns kept lines after after. Only the lines of the page are
// copied, under the ring's lock: a follower reading the few new lines of
// a job that keeps thousands costs what it reads, not the ring.
func (m *Memory) Read(_ context.Context, job string, after int64, limit int) (progress.LogPage, error) {
	r := m.ring(job)
	if r == nil {
		return progress.LogPage{}, ErrUnknown
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.lines)
	first := r.last - int64(n) + 1 // the n of the oldest kept line
	from := 0                      // how many kept lines to skip
	if after >= first {
		from = int(min(after-first+1, int64(n)))
	}
	count := min(max(limit, 0), n-from)
	kept := make([]progress.LogLine, count)
	for i := range count {
		kept[i] = r.lines[(r.start+from+i)%n]
	}
	p := progress.LogPage{Last: r.last, Lines: kept}
	if n > 0 {
		p.First = first
		p.Truncated = after >= 0 && after+1 < first
	}
	return p, nil
}

// Drop forgets the job's ring.
func (m *Memory) Drop(_ context.Context, job string) error {
	m.mu.Lock()
	delete(m.rings, job)
	m.mu.Unlock()
	return nil
}

// Close does nothing: Memory holds no outside resource.
func (m *Memory) Close() error { return nil }
