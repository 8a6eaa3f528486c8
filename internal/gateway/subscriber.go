package gateway

import (
	"sync"
	"sync/atomic"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/progress"
)

// subscriber is what the hub delivers to: one WebSocket connection or SSE
// stream, its channels and its queue. The transport around it decides how
// the queue is drained (wake) and what a client too slow to keep up gets
// (overflow).
//
// Locks: chMu guards channels and is held while the hub's index changes,
// so both directions of the index change together; mu guards the queue and
// closed. Order: chMu, then a hub shard's mu, then mu. The hub calls
// deliver holding a shard's read lock, so nothing here may call the hub
// while holding mu.
type subscriber struct {
	transport string
	// principal is who the subscriber acts for; nil until authenticated.
	// It is read by publishers (project: visibility) without a lock.
	principal atomic.Pointer[auth.Principal]

	chMu     sync.Mutex
	channels map[string]struct{}

	mu         sync.Mutex
	q          queue
	closed     bool // no more deliveries
	overflowed bool
	// urgent says the queue holds what the write spacing must not hold
	// back: a state change or a reply. Cleared when the queue is taken.
	urgent bool
	// wake is called with mu held when the queue goes from empty to
	// non-empty, or gets something urgent. It must not block. here says
	// the caller can write the queue itself once it has released mu;
	// wake returns true when it left the write to the caller, who must
	// then call writeHere.
	wake func(here bool) bool
	// writeHere writes what wake(true) left to the caller, who holds
	// neither mu nor any lock of the hub.
	writeHere func()
	// overflow is called once, with mu held, when the queue goes over its
	// bound. It must not block.
	overflow func()
	// logNext is, per logs: channel, the n of the last line sent (< 0:
	// none yet, start at the first kept line); see logs.go.
	logNext map[string]int64
	m       *metrics
}

func newSubscriber(transport string, q queue, m *metrics) *subscriber {
	return &subscriber{transport: transport, q: q, m: m, channels: make(map[string]struct{})}
}

// canSee reports whether the subscriber's principal may see job s.
func (s *subscriber) canSee(snap *progress.Snapshot) bool {
	p := s.principal.Load()
	return p != nil && p.CanSee(*snap)
}

// deliver queues update m of job on channel ch. It never blocks on the
// client: it only takes mu for a map update.
//
// The writer it wakes is a goroutine of its own, not the publisher: written
// from the publisher (as repliesHere does), 10,000 viewers of one job held
// each report's answer for the whole round of writes, and with a few
// viewers per job it measured no cheaper (perjob, 3,000 jobs).
func (s *subscriber) deliver(ch, job string, m *message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.overflowed {
		return
	}
	wasIdle := s.q.idle()
	switch s.q.push(ch, job, m) {
	case pushCoalesced:
		s.m.coalesced.Inc()
	case pushStale:
		s.m.stale.Inc()
		return
	case pushOverflow:
		s.overflowLocked()
		return
	}
	// An urgent update wakes the writer even when the queue was not
	// idle: it may be waiting out the spacing, which this one skips.
	if m.urgent && !s.q.idle() {
		s.urgent = true
		s.wake(false)
	} else if wasIdle && !s.q.idle() {
		s.wake(false)
	}
}

// reply queues a reply frame.
func (s *subscriber) reply(frame []byte) { s.replies([][]byte{frame}) }

// replies queues frames, in order, as reply does one.
func (s *subscriber) replies(frames [][]byte) { s.queueReplies(frames, false) }

// repliesHere is replies for a caller that holds no lock: when no writer
// runs, it writes the frames itself instead of starting one.
func (s *subscriber) repliesHere(frames [][]byte) {
	if s.queueReplies(frames, true) {
		s.writeHere()
	}
}

func (s *subscriber) queueReplies(frames [][]byte, here bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.overflowed {
		return false
	}
	for _, f := range frames {
		if s.q.pushReply(f) == pushOverflow {
			s.overflowLocked()
			return false
		}
	}
	// A reply is never held back by the spacing: a subscriber or a
	// reporting worker waits for it.
	s.urgent = true
	return s.wake(here)
}

// hold keeps updates of ch unsent until release (see queue).
func (s *subscriber) hold(ch string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.q.hold(ch)
	}
}

// release queues reply (nil: none), then the held updates of ch.
func (s *subscriber) release(ch string, reply []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.overflowed {
		return
	}
	wasIdle := s.q.idle()
	if s.q.release(ch, reply) == pushOverflow {
		s.overflowLocked()
		return
	}
	if reply != nil {
		s.urgent = true // the subscribe's reply and its first snapshots
		s.wake(false)
	} else if wasIdle && !s.q.idle() {
		s.wake(false)
	}
}

func (s *subscriber) overflowLocked() {
	s.overflowed = true
	s.m.slowCloses.WithLabelValues(s.transport, "queue_full").Inc()
	s.overflow()
}

// take empties what is ready to send into buf[:0]. It returns nothing
// once the subscriber is closed or overflowed: there is no point in
// writing more.
func (s *subscriber) take(buf []*message) []*message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.takeLocked(buf)
}

func (s *subscriber) takeLocked(buf []*message) []*message {
	clear(buf)
	s.urgent = false
	if s.closed || s.overflowed {
		return buf[:0]
	}
	return s.q.take(buf[:0])
}

// isUrgent reports whether the queue holds a state change or a reply,
// which the write spacing does not hold back.
func (s *subscriber) isUrgent() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.urgent
}

// channelCount returns how many channels the subscriber is in.
func (s *subscriber) channelCount() int {
	s.chMu.Lock()
	defer s.chMu.Unlock()
	return len(s.channels)
}

// dropUnseen drops the unsent updates of ch of jobs not owned by owner.
func (s *subscriber) dropUnseen(ch, owner string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.q.dropWhere(ch, func(m *message) bool { return m.owner != owner })
}

// channelNames returns the channels the subscriber is in now.
func (s *subscriber) channelNames() []string {
	s.chMu.Lock()
	defer s.chMu.Unlock()
	names := make([]string, 0, len(s.channels))
	for ch := range s.channels {
		names = append(names, ch)
	}
	return names
}

// isSubscribed reports whether the subscriber is in channel ch.
func (s *subscriber) isSubscribed(ch string) bool {
	s.chMu.Lock()
	defer s.chMu.Unlock()
	_, ok := s.channels[ch]
	return ok
}
