package gateway

import (
	"fmt"
	"testing"
)

func msg(seq uint64, size int) *message {
	return &message{frame: make([]byte, size), seq: seq, jobAt: 0}
}

func seqs(ms []*message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.seq
	}
	return out
}

func TestQueueCoalescesAndDropsStale(t *testing.T) {
	t.Parallel()
	q := newQueue(10, 1<<20)
	steps := []struct {
		ch, job string
		seq     uint64
		want    pushResult
	}{
		{"job:a", "a", 1, pushQueued},
		{"job:a", "a", 3, pushCoalesced},  // replaces the unsent 1
		{"job:a", "a", 2, pushStale},      // out of order: older than the queued 3
		{"job:a", "a", 3, pushStale},      // duplicate
		{"project:p", "a", 2, pushQueued}, // other channel, own key
		{"job:b", "b", 7, pushQueued},
	}
	for _, s := range steps {
		if got := q.push(s.ch, s.job, msg(s.seq, 10)); got != s.want {
			t.Fatalf("push %s %s seq %d = %d, want %d", s.ch, s.job, s.seq, got, s.want)
		}
	}
	got := seqs(q.take(nil))
	if fmt.Sprint(got) != "[3 2 7]" {
		t.Fatalf("take = %v, want [3 2 7] (in first-queued order)", got)
	}
	if !q.idle() || q.frames != 0 || q.bytes != 0 {
		t.Fatalf("after take: idle %v frames %d bytes %d", q.idle(), q.frames, q.bytes)
	}
	// Sent seqs are remembered: an older or equal update is dropped.
	if got := q.push("job:a", "a", msg(3, 10)); got != pushStale {
		t.Fatalf("push of a sent seq = %d, want stale", got)
	}
	if got := q.push("job:a", "a", msg(4, 10)); got != pushQueued {
		t.Fatalf("push of a newer seq = %d, want queued", got)
	}
}

func TestQueueBoundCountsDistinctKeysNotUpdates(t *testing.T) {
	t.Parallel()
	q := newQueue(3, 1<<20)
	for seq := uint64(1); seq <= 10_000; seq++ {
		if r := q.push("job:a", "a", msg(seq, 100)); r == pushOverflow {
			t.Fatal("one job's updates overflowed the queue: they must coalesce")
		}
	}
	for i, want := range []pushResult{pushQueued, pushQueued, pushOverflow} {
		if got := q.push("project:p", fmt.Sprint(i), msg(1, 100)); got != want {
			t.Fatalf("distinct key %d: %d, want %d", i, got, want)
		}
	}
	if q.bytes != 4*100 {
		t.Fatalf("bytes = %d, want 400", q.bytes)
	}
}

func TestQueueByteBound(t *testing.T) {
	t.Parallel()
	q := newQueue(100, 1000)
	if q.push("job:a", "a", msg(1, 600)) != pushQueued {
		t.Fatal("first push refused")
	}
	if got := q.push("job:b", "b", msg(1, 600)); got != pushOverflow {
		t.Fatalf("push over the byte bound = %d, want overflow", got)
	}
}

func TestQueueHoldReleasesAfterReply(t *testing.T) {
	t.Parallel()
	q := newQueue(10, 1<<20)
	q.push("job:x", "x", msg(1, 10))
	q.hold("project:p")
	q.push("project:p", "a", msg(5, 10))
	q.push("project:p", "a", msg(6, 10)) // coalesces while held
	if got := seqs(q.take(nil)); fmt.Sprint(got) != "[1]" {
		t.Fatalf("take while held = %v, want only the other channel's [1]", got)
	}
	if q.frames != 1 {
		t.Fatalf("held frames not counted: frames = %d", q.frames)
	}
	q.release("project:p", []byte(`{"type":"reply","id":1}`))
	got := q.take(nil)
	if len(got) != 2 || got[0].seq != 0 || got[1].seq != 6 {
		t.Fatalf("take after release = %v, want the reply then seq 6", seqs(got))
	}
}

func TestQueueRemoveForgetsChannel(t *testing.T) {
	t.Parallel()
	q := newQueue(10, 1<<20)
	q.push("job:a", "a", msg(5, 10))
	q.push("job:b", "b", msg(1, 10))
	q.remove("job:a")
	if got := seqs(q.take(nil)); fmt.Sprint(got) != "[1]" {
		t.Fatalf("take = %v, want [1]", got)
	}
	// A new subscription to the channel starts afresh.
	if got := q.push("job:a", "a", msg(2, 10)); got != pushQueued {
		t.Fatalf("push after remove = %d, want queued", got)
	}
	if q.tracked != 2 {
		t.Fatalf("tracked = %d, want 2", q.tracked)
	}
	// The same with the key pushed last (the one push remembers): removed
	// while unsent, it is not sent, and the channel starts afresh.
	q.take(nil)
	q.push("job:c", "c", msg(7, 10))
	q.remove("job:c")
	if got := seqs(q.take(nil)); len(got) != 0 {
		t.Fatalf("take after removing the last pushed key = %v, want nothing", got)
	}
	if got := q.push("job:c", "c", msg(3, 10)); got != pushQueued {
		t.Fatalf("push after removing the last pushed key = %d, want queued", got)
	}
	q.remove("job:c")
	if got := seqs(q.take(nil)); len(got) != 0 {
		t.Fatalf("an update of a removed channel was sent: %v", got)
	}
}

func TestQueueSweepBoundsRememberedSeqs(t *testing.T) {
	t.Parallel()
	q := newQueue(4, 1<<20) // maxTracked 1024
	for i := range 10_000 {
		q.push("project:p", fmt.Sprint(i), msg(1, 10))
		q.take(nil)
	}
	if q.tracked > q.maxTracked {
		t.Fatalf("tracked %d keys, bound %d", q.tracked, q.maxTracked)
	}
	if len(q.keys["project:p"]) != q.tracked {
		t.Fatalf("tracked %d but %d keys in the map", q.tracked, len(q.keys["project:p"]))
	}
}

// BenchmarkQueueCoalesce: 100 jobs of one project change again and again
// while the writer takes only every 64th round, so nearly every push
// replaces an unsent snapshot.
func BenchmarkQueueCoalesce(b *testing.B) {
	q := newQueue(DefaultMaxQueuedFrames, DefaultMaxQueuedBytes)
	ms := make([]message, len(jobIDs))
	for i := range ms {
		ms[i].frame = make([]byte, 300)
	}
	var buf []*message
	seq := uint64(0)
	b.ReportAllocs()
	for b.Loop() {
		seq++
		for j := range ms {
			ms[j].seq = seq
			q.push("project:p", jobIDs[j], &ms[j])
		}
		if seq%64 == 0 {
			buf = q.take(buf[:0])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(ms)), "ns/push")
}

var jobIDs = func() []string {
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = fmt.Sprintf("job-%03d", i)
	}
	return ids
}()

// TestQueueOneKeyWithoutMaps: a queue with one key keeps it outside the
// maps (an idle connection's memory), moves it into them with a second
// key without losing its seq, and goes back to no maps once its channels
// are removed.
func TestQueueOneKeyWithoutMaps(t *testing.T) {
	q := newQueue(16, 1<<20)
	q.push("job:a", "a", msg(1, 10))
	if q.keys != nil || q.one == nil || q.tracked != 1 {
		t.Fatalf("one key: keys %v, one %v, tracked %d", q.keys, q.one, q.tracked)
	}
	if got := q.push("job:a", "a", msg(2, 10)); got != pushCoalesced {
		t.Fatalf("a newer snapshot of the one key: %v, want coalesced", got)
	}
	q.take(nil)
	q.push("job:b", "b", msg(1, 10))
	if q.one != nil || len(q.keys) != 2 || q.tracked != 2 {
		t.Fatalf("two keys: keys %v, one %v, tracked %d", q.keys, q.one, q.tracked)
	}
	if got := q.push("job:a", "a", msg(2, 10)); got != pushStale {
		t.Fatalf("an old seq of the key moved into the maps: %v, want stale", got)
	}
	q.remove("job:a")
	q.remove("job:b")
	if q.keys != nil || q.one != nil || q.tracked != 0 || q.frames != 0 {
		t.Fatalf("removed: keys %v, one %v, tracked %d, frames %d", q.keys, q.one, q.tracked, q.frames)
	}
	q.take(nil) // the cleared slot b left in pending
	q.hold("job:c")
	q.push("job:c", "c", msg(5, 10))
	if !q.idle() {
		t.Fatal("a held channel's update is ready to send")
	}
	q.release("job:c", nil)
	if got := q.take(nil); len(got) != 1 || got[0].seq != 5 || q.held != nil {
		t.Fatalf("released: %d frames, held %v", len(got), q.held)
	}
}
