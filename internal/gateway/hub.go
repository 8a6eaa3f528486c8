package gateway

import (
	"hash/maphash"
	"sync"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/broker"
)

// hubShards spreads channels over independent locks so that publishing to
// one channel and subscribing to another never contend, and publishers of
// different jobs only share read locks.
const hubShards = 64

// hub is the channel → subscribers index, and the way back (each
// subscriber's channels set), kept consistent: both change under the
// subscriber's chMu, the first under its shard's lock as well.
//
// Publishing takes a shard's read lock per channel and calls deliver on
// each subscriber, which only enqueues; a slow client therefore costs the
// publisher one map write, never a wait.
//
// Not chosen: copy-on-write subscriber slices behind an atomic pointer.
// Publishing would skip the read lock, but every subscribe would copy the
// channel's slice, so 1,000 clients subscribing to one job cost O(n²), and
// a subscribe burst on a popular job or project is the common case.
type hub struct {
	seed   maphash.Seed
	shards [hubShards]hubShard
	m      *metrics
	warnf  func(msg string, args ...any) // nil: nothing logged
}

type hubShard struct {
	mu       sync.RWMutex
	channels map[string]map[*subscriber]struct{}
}

func newHub(m *metrics) *hub {
	h := &hub{seed: maphash.MakeSeed(), m: m}
	for i := range h.shards {
		h.shards[i].channels = make(map[string]map[*subscriber]struct{})
	}
	return h
}

func (h *hub) shard(ch string) *hubShard {
	return &h.shards[maphash.String(h.seed, ch)%hubShards]
}

// subscribe adds s to channel ch. It returns false if s was already in it
// or is closed. A closed subscriber is never added: its channels would
// never be removed.
func (h *hub) subscribe(ch string, s *subscriber) bool {
	s.chMu.Lock()
	defer s.chMu.Unlock()
	if _, ok := s.channels[ch]; ok || s.channels == nil {
		return false
	}
	s.channels[ch] = struct{}{}
	sh := h.shard(ch)
	sh.mu.Lock()
	subs := sh.channels[ch]
	if subs == nil {
		subs = make(map[*subscriber]struct{})
		sh.channels[ch] = subs
	}
	subs[s] = struct{}{}
	sh.mu.Unlock()
	h.m.subscriptions.Inc()
	return true
}

// unsubscribe removes s from channel ch and drops what s has queued for
// it: once unsubscribe returns, no update of ch reaches s's queue.
func (h *hub) unsubscribe(ch string, s *subscriber) bool {
	s.chMu.Lock()
	defer s.chMu.Unlock()
	if _, ok := s.channels[ch]; !ok {
		return false
	}
	delete(s.channels, ch)
	h.removeLocked(ch, s)
	s.mu.Lock()
	s.q.remove(ch)
	s.dropLogCursorLocked(ch)
	s.mu.Unlock()
	return true
}

// close removes s from every channel and stops deliveries to it. It is
// safe to call more than once.
func (h *hub) close(s *subscriber) {
	s.chMu.Lock()
	defer s.chMu.Unlock()
	for ch := range s.channels {
		h.removeLocked(ch, s)
	}
	s.channels = nil // subscribe refuses from now on
	s.mu.Lock()
	s.closed = true
	s.q = queue{} // free what was pending
	s.mu.Unlock()
}

// removeLocked takes s out of ch's set; the caller holds s.chMu.
func (h *hub) removeLocked(ch string, s *subscriber) {
	sh := h.shard(ch)
	sh.mu.Lock()
	if subs := sh.channels[ch]; subs != nil {
		delete(subs, s)
		if len(subs) == 0 {
			delete(sh.channels, ch)
		}
	}
	sh.mu.Unlock()
	h.m.subscriptions.Dec()
}

// publish delivers u to the subscribers of the channels that cover its
// job: job:, project:, user:, and children: of its parent and tag: of
// each of its tags. It is the broker subscription: it must not block, and it does
// not, because deliver only enqueues.
//
// A connection in several of these channels gets the update once per
// channel, each frame naming its channel: a client routes updates by
// channel (one listener per subscription), so each listener sees every
// job it asked for. The per-(channel, job) queue key keeps coalescing and
// the seq check independent per channel.
func (h *hub) publish(u broker.Update) {
	if u.Log {
		h.publishLog(u)
		return
	}
	snap := &u.Snapshot
	var buf [128]byte
	h.publishNamed(buf[:0], "job:", snap.JobID, &u, false)
	h.publishNamed(buf[:0], "project:", snap.Project, &u, true)
	h.publishNamed(buf[:0], "user:", snap.Owner, &u, false)
	if snap.ParentID != "" {
		h.publishNamed(buf[:0], "children:", snap.ParentID, &u, false)
	}
	for _, tag := range snap.Tags {
		h.publishNamed(buf[:0], "tag:", tag, &u, true)
	}
}

// publishNamed is publishTo for the channel prefix+key, named in buf
// first: the channels of most updates have no subscriber (a job reported
// to with nobody watching), and for them no name is allocated.
func (h *hub) publishNamed(buf []byte, prefix, key string, u *broker.Update, filter bool) {
	name := append(append(buf, prefix...), key...)
	sh := &h.shards[maphash.Bytes(h.seed, name)%hubShards] // as shard(string(name))
	sh.mu.RLock()
	watched := len(sh.channels[string(name)]) > 0
	sh.mu.RUnlock()
	if watched {
		h.publishTo(string(name), u, filter)
	}
}

// filtered reports whether channels of kind are open to anyone, so each
// update passes only to the subscribers who may see its job (project:
// and tag:); the others were authorized on subscribe.
func filtered(kind auth.ChannelKind) bool {
	return kind == auth.ProjectChannel || kind == auth.TagChannel
}

// publishTo sends u to the subscribers of ch. The snapshot's JSON is
// encoded here if the publisher left u.Data empty (the in-process broker:
// jobs.Service does not encode what no one may be watching), once for
// all of u's channels, and only if ch has a subscriber: a job reported
// to with no one watching costs no encoding at all.
func (h *hub) publishTo(ch string, u *broker.Update, filter bool) {
	sh := h.shard(ch)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	subs := sh.channels[ch]
	if len(subs) == 0 {
		return
	}
	if len(u.Data) == 0 {
		data, err := u.Snapshot.AppendJSON(make([]byte, 0, 512))
		if err != nil {
			if h.warnf != nil {
				h.warnf("encode an update", "job", u.Snapshot.JobID, "seq", u.Snapshot.Seq, "err", err)
			}
			return
		}
		u.Data = data
	}
	m := newUpdate(ch, &u.Snapshot, u.Data) // once per channel, shared by all
	for s := range subs {
		// project: channels are open to anyone; only visible jobs pass.
		// job: and user: were authorized on subscribe.
		if filter && !s.canSee(&u.Snapshot) {
			continue
		}
		s.deliver(ch, u.Snapshot.JobID, m)
	}
}

// channelNames returns every channel that has a subscriber now.
func (h *hub) channelNames() []string {
	var out []string
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for ch, subs := range sh.channels {
			if len(subs) > 0 {
				out = append(out, ch)
			}
		}
		sh.mu.RUnlock()
	}
	return out
}
