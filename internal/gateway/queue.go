package gateway

import "slices"

// queue is one connection's unsent frames: the progress-aware backpressure
// of SPEC.md ("a slow client ... may receive fewer intermediate updates").
//
// Updates are keyed by (channel, job). A newer snapshot replaces an unsent
// older one of the same key in place, so a client that reads slowly gets
// fewer intermediate snapshots but always the newest, terminal included: a
// terminal snapshot has the highest seq of its job, so nothing replaces it
// and it is never dropped. An update whose seq is ≤ the last one queued or
// sent for its key is dropped: brokers may deliver concurrently published
// updates out of order, and the subscribe path enqueues snapshots that live
// delivery may already have queued.
//
// The queue is bounded by the number of unsent frames (distinct keys plus
// replies) and their bytes. Coalescing keeps it at one frame per job
// however fast a job changes, so only a client that cannot keep up even
// then — more distinct jobs pending than the bound — overflows, and its
// connection is closed (4008).
//
// Per key the queue also remembers the last seq after sending it, for the
// seq check. That memory is swept (every key not pending is forgotten) when
// it holds more than maxTracked keys: after a sweep an out-of-order stale
// update may be delivered once, which clients ignore by seq anyway.
//
// While a new subscription reads the current snapshots, its channel is
// held: its updates are queued (and coalesced, and counted in the bound) but
// not sent, until release queues the subscribe reply and then them. So the
// reply always comes before the first update of its channel, and an update
// published while the snapshots are read is neither lost nor sent early.
//
// A queue is not safe for concurrent use: its subscriber's mu guards it.
type queue struct {
	maxFrames  int
	maxBytes   int
	maxTracked int

	// The keys' entries. Most connections watch one job: its key is kept
	// in oneCh/oneJob/one, and the maps are made only for a second key
	// (two small maps were ~0.9 KiB of an idle connection's 10 KiB). One
	// of the two is in use at a time: one is nil while keys is not.
	keys          map[string]map[string]*entry // channel → job id → entry
	oneCh, oneJob string
	one           *entry
	tracked       int           // entries in keys or one
	held          []heldChannel // channels whose updates wait for release
	pending       []*entry      // sendable, oldest first; may hold cleared entries
	frames        int           // unsent frames, held ones included
	bytes         int           // unsent bytes, held ones included

	// The key pushed last and its entry: two map lookups per delivery in
	// queues spread over memory were 4–5% of the server's CPU in the
	// 10,000-client fanout bench. Cleared whenever entries leave keys.
	lastCh, lastJob string
	last            *entry
}

// heldChannel is a channel held until release, and its updates in push
// order. A connection holds a channel only while a subscribe to it is
// under way, so a queue holds few: a list, not a map.
type heldChannel struct {
	ch   string
	list []*entry
}

// heldAt returns where ch is in q.held, or -1.
func (q *queue) heldAt(ch string) int {
	for i := range q.held {
		if q.held[i].ch == ch {
			return i
		}
	}
	return -1
}

// unhold forgets the hold at i.
func (q *queue) unhold(i int) {
	q.held = slices.Delete(q.held, i, i+1)
	if len(q.held) == 0 {
		q.held = nil
	}
}

// lookup returns the entry of (ch, job), nil if it has none.
func (q *queue) lookup(ch, job string) *entry {
	switch {
	case q.last != nil && q.lastJob == job && q.lastCh == ch:
		return q.last
	case q.keys != nil:
		return q.keys[ch][job]
	case q.one != nil && q.oneJob == job && q.oneCh == ch:
		return q.one
	}
	return nil
}

// track adds e as the entry of (ch, job), which has none.
func (q *queue) track(ch, job string, e *entry) {
	q.tracked++
	if q.keys == nil && q.one == nil {
		q.oneCh, q.oneJob, q.one = ch, job, e
		return
	}
	if q.keys == nil { // a second key: the one moves into the maps
		q.keys = map[string]map[string]*entry{q.oneCh: {q.oneJob: q.one}}
		q.oneCh, q.oneJob, q.one = "", "", nil
	}
	jobs := q.keys[ch]
	if jobs == nil {
		jobs = make(map[string]*entry)
		q.keys[ch] = jobs
	}
	jobs[job] = e
}

// eachOf calls fn with every entry of channel ch.
func (q *queue) eachOf(ch string, fn func(*entry)) {
	if q.one != nil && q.oneCh == ch {
		fn(q.one)
	}
	for _, e := range q.keys[ch] {
		fn(e)
	}
}

// entry is one key's state, or one reply (never in keys).
type entry struct {
	msg    *message // unsent frame, nil once sent or removed
	seq    uint64   // highest seq queued or sent for the key
	queued bool     // in pending
}

// pushResult says what push did with an update.
type pushResult uint8

const (
	pushQueued    pushResult = iota // a new frame is waiting
	pushCoalesced                   // it replaced an unsent older snapshot
	pushStale                       // dropped: seq ≤ the last queued or sent
	pushOverflow                    // queued, but the queue is over its bound
)

func newQueue(maxFrames, maxBytes int) queue {
	return queue{
		maxFrames:  maxFrames,
		maxBytes:   maxBytes,
		maxTracked: max(2*maxFrames, 1024),
	}
}

// idle reports whether nothing is ready to send. A push that makes a
// queue stop being idle must wake its writer.
func (q *queue) idle() bool { return len(q.pending) == 0 }

// plain reports whether what is ready to send is written as it is (no
// logs: mark to expand into lines) and at most max bytes.
func (q *queue) plain(max int) bool {
	if q.bytes > max {
		return false
	}
	for _, e := range q.pending {
		if e.msg != nil && e.msg.log != "" {
			return false
		}
	}
	return true
}

// push queues update m of job on channel ch.
func (q *queue) push(ch, job string, m *message) pushResult {
	e := q.lookup(ch, job)
	if e != nil && m.seq <= e.seq {
		return pushStale
	}
	if e != nil && e.msg != nil {
		q.bytes += len(m.frame) - len(e.msg.frame)
		e.msg, e.seq = m, m.seq
		return pushCoalesced
	}
	if e == nil {
		if q.tracked >= q.maxTracked {
			q.sweep()
		}
		e = &entry{}
		q.track(ch, job, e)
	}
	q.lastCh, q.lastJob, q.last = ch, job, e
	e.msg, e.seq = m, m.seq
	if i := q.heldAt(ch); i >= 0 {
		q.held[i].list = append(q.held[i].list, e)
		return q.count(m)
	}
	return q.add(e)
}

// pushReply queues a reply frame; replies are never coalesced.
func (q *queue) pushReply(frame []byte) pushResult {
	return q.add(&entry{msg: &message{frame: frame}})
}

// add makes e, whose msg is set, ready to send.
func (q *queue) add(e *entry) pushResult {
	q.pending = append(q.pending, e)
	e.queued = true
	return q.count(e.msg)
}

func (q *queue) count(m *message) pushResult {
	q.frames++
	q.bytes += len(m.frame)
	if q.frames > q.maxFrames || q.bytes > q.maxBytes {
		return pushOverflow
	}
	return pushQueued
}

// hold keeps ch's updates from being sent until release.
func (q *queue) hold(ch string) {
	if q.heldAt(ch) < 0 {
		q.held = append(q.held, heldChannel{ch: ch})
	}
}

// release queues reply (if not nil), then every held update of ch in the
// order they were first queued (a subscriber's first snapshots come
// newest first, as the job store listed them).
func (q *queue) release(ch string, reply []byte) pushResult {
	res := pushQueued
	if reply != nil {
		res = q.pushReply(reply)
	}
	i := q.heldAt(ch)
	if i < 0 {
		return res
	}
	list := q.held[i].list
	q.unhold(i)
	for _, e := range list {
		if e.msg != nil && !e.queued {
			q.pending = append(q.pending, e)
			e.queued = true
		}
	}
	return res
}

// remove forgets channel ch: its unsent updates, its seqs and its hold, so
// a later subscribe to ch starts afresh.
func (q *queue) remove(ch string) {
	q.eachOf(ch, func(e *entry) {
		if e.msg != nil {
			q.frames--
			q.bytes -= len(e.msg.frame)
			e.msg = nil // its slot in pending, if any, is skipped by take
		}
		q.tracked--
	})
	if q.one != nil && q.oneCh == ch {
		q.oneCh, q.oneJob, q.one = "", "", nil
	}
	delete(q.keys, ch)
	if len(q.keys) == 0 {
		q.keys = nil
	}
	if i := q.heldAt(ch); i >= 0 {
		q.unhold(i)
	}
	q.last = nil
}

// dropWhere drops the unsent updates of ch for which drop is true; their
// seqs are kept, so older ones of those jobs stay stale.
func (q *queue) dropWhere(ch string, drop func(*message) bool) {
	q.eachOf(ch, func(e *entry) {
		if e.msg != nil && drop(e.msg) {
			q.frames--
			q.bytes -= len(e.msg.frame)
			e.msg = nil // its slot in pending or held, if any, is skipped
		}
	})
}

// take appends every ready frame to buf, oldest first, and leaves only
// held updates in the queue.
func (q *queue) take(buf []*message) []*message {
	for _, e := range q.pending {
		if e.msg != nil {
			buf = append(buf, e.msg)
			q.frames--
			q.bytes -= len(e.msg.frame)
			e.msg = nil
		}
		e.queued = false
	}
	clear(q.pending)
	if cap(q.pending) > 64 {
		q.pending = nil // an idle connection should not keep a burst's array
	} else {
		q.pending = q.pending[:0]
	}
	return buf
}

// sweep forgets the seqs of every key with nothing unsent.
func (q *queue) sweep() {
	q.last = nil
	if q.one != nil && q.one.msg == nil {
		q.oneCh, q.oneJob, q.one = "", "", nil
		q.tracked--
	}
	for ch, jobs := range q.keys {
		for id, e := range jobs {
			if e.msg == nil {
				delete(jobs, id)
				q.tracked--
			}
		}
		if len(jobs) == 0 {
			delete(q.keys, ch)
		}
	}
	if len(q.keys) == 0 {
		q.keys = nil
	}
}
