package brokertest

import (
	"sync"
	"testing"

	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/progress"
)

// JobRecorder keeps every snapshot of one job a broker delivers, for tests
// of what a node publishes (with a shared broker, what every node does).
type JobRecorder struct {
	mu    sync.Mutex
	snaps []progress.Snapshot
}

// RecordJob starts recording job id's snapshots from b; it stops when
// the test ends.
func RecordJob(t testing.TB, b broker.Broker, id string) *JobRecorder {
	r := &JobRecorder{}
	stop := b.Subscribe(func(u broker.Update) {
		if u.Snapshot.JobID == id && !u.Log {
			r.mu.Lock()
			r.snaps = append(r.snaps, u.Snapshot.Clone())
			r.mu.Unlock()
		}
	})
	t.Cleanup(stop)
	return r
}

// Snapshots returns what was recorded so far, in delivery order.
func (r *JobRecorder) Snapshots() []progress.Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]progress.Snapshot(nil), r.snaps...)
}

// Messages returns the distinct messages recorded, in order.
func (r *JobRecorder) Messages() []string {
	var out []string
	for _, s := range r.Snapshots() {
		if s.Message != "" && (len(out) == 0 || out[len(out)-1] != s.Message) {
			out = append(out, s.Message)
		}
	}
	return out
}

// Count returns how many distinct seqs recorded match.
func (r *JobRecorder) Count(match func(progress.Snapshot) bool) int {
	seen := map[uint64]bool{}
	for _, s := range r.Snapshots() {
		if match(s) {
			seen[s.Seq] = true
		}
	}
	return len(seen)
}
