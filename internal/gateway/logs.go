package gateway

import (
	"context"
	"encoding/json"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/progress"
)

// Log channels (logs:<id>, SPEC "Log lines") are pulled, not pushed. A
// subscriber's queue holds, per logs: channel, one mark: "the job has lines
// up to n" (a message with log set and seq n). Marks coalesce like
// snapshots — a newer mark replaces an unsent one — so a job printing
// thousands of lines a second costs a subscriber one queued entry, and a
// slow reader is never closed for its log channels. When the writer takes
// a mark it reads the lines after the last one it sent from the log store
// (jobs.Service.Logs: the ring of a running job, the database for a
// finished one), and sends them as {"type":"log"} frames. Lines are never
// coalesced: every kept line after the cursor goes out. A reader that fell
// further behind than the lines kept gets "truncated": true and carries on
// from the first kept line. Marks come from the broker's log notices
// (broker.Update.Log), so a line appended on any node wakes subscribers on
// every node; the lines themselves are read where the subscriber is.

const (
	// logReadLines is how many lines one read of the log store asks for.
	logReadLines = 1000
	// logReads bounds the reads for one mark: a job printing faster than
	// a subscriber reads is caught up with at the next mark.
	logReads = 4
	// logFrameBytes bounds one log frame; a read's lines are split over
	// frames of about this size.
	logFrameBytes = 60 << 10
)

// logsPrefix starts every logs: channel name.
const logsPrefix = "logs:"

// logMark is the queued mark of channel ch: job has lines up to last.
func logMark(ch, job, owner string, last int64) *message {
	return &message{log: ch, logJob: job, seq: uint64(last), owner: owner}
}

// publishLog queues a mark for the subscribers of the job's logs: channel.
func (h *hub) publishLog(u broker.Update) {
	ch := logsPrefix + u.Snapshot.JobID
	sh := h.shard(ch)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	subs := sh.channels[ch]
	if len(subs) == 0 {
		return
	}
	m := logMark(ch, u.Snapshot.JobID, u.Snapshot.Owner, int64(u.Snapshot.Seq))
	for s := range subs {
		s.deliver(ch, u.Snapshot.JobID, m)
	}
}

// setAfter takes a subscribe's "after" (nil: none), which only logs:
// channels take, and only as a line number ≥ 0.
func (t *target) setAfter(after *int64) *protoError {
	switch {
	case after == nil:
		return nil
	case t.kind != auth.LogsChannel:
		return errorf(CodeBadRequest, "%s: \"after\" is for logs: channels only", t.name)
	case *after < 0:
		return errorf(CodeBadRequest, "%s: \"after\" %d: give the n of the last line you have (≥ 0), or leave it out for every kept line", t.name, *after)
	}
	t.after = *after
	return nil
}

// joinLogs subscribes s to the logs: channel t from line t.after on: it
// registers s with the channel held, sets the cursor, and queues a mark
// when lines after the cursor exist, so the writer sends the kept lines
// and then, mark after mark, the live ones.
func (g *Gateway) joinLogs(s *subscriber, t target, reply func(*protoError) []byte) *protoError {
	s.hold(t.name)
	added := g.hub.subscribe(t.name, s)
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.RequestTimeout)
	p, err := g.cfg.Jobs.Logs(ctx, t.key, t.after, 1)
	cancel()
	if err != nil {
		g.warnf("read log lines for a subscriber", "job", t.key, "err", err)
		perr := errorf(CodeInternal, "%s: the log store did not answer; retry later", t.name)
		if added {
			g.hub.unsubscribe(t.name, s)
		}
		s.release(t.name, reply(perr))
		return perr
	}
	s.setLogCursor(t.name, t.after)
	if p.Last > max(t.after, 0) {
		s.deliver(t.name, t.key, logMark(t.name, t.key, "", p.Last))
	}
	s.release(t.name, reply(nil))
	return nil
}

// expandLogs replaces each log mark in msgs by the frames of the lines it
// stands for, read now from the log store; the writer calls it with no
// lock held. A mark whose lines were already sent (its cursor is past it)
// or whose read fails becomes nothing: the next mark reads again.
func (g *Gateway) expandLogs(s *subscriber, msgs []*message) []*message {
	marks := 0
	for _, m := range msgs {
		if m.log != "" {
			marks++
		}
	}
	if marks == 0 {
		return msgs
	}
	out := make([]*message, 0, len(msgs)+marks)
	for _, m := range msgs {
		if m.log == "" {
			out = append(out, m)
			continue
		}
		out = g.appendLogFrames(out, s, m)
	}
	clear(msgs)
	return out
}

// appendLogFrames reads the lines of mark m after s's cursor and appends
// their frames to out, moving the cursor.
func (g *Gateway) appendLogFrames(out []*message, s *subscriber, m *message) []*message {
	for range logReads {
		after, ok := s.logCursor(m.log)
		if !ok {
			return out // unsubscribed meanwhile
		}
		if after >= 0 && uint64(after) >= m.seq {
			return out // sent already, by an earlier mark's reads
		}
		ctx, cancel := context.WithTimeout(g.ctx, g.cfg.RequestTimeout)
		p, err := g.cfg.Jobs.Logs(ctx, m.logJob, after, logReadLines)
		cancel()
		if err != nil {
			g.warnf("read log lines for a subscriber", "job", m.logJob, "err", err)
			return out
		}
		if len(p.Lines) == 0 {
			return out
		}
		out = appendLogMessages(out, m.log, p)
		if !s.moveLogCursor(m.log, after, p.Lines[len(p.Lines)-1].N) {
			return out
		}
		if len(p.Lines) < logReadLines {
			return out
		}
	}
	return out
}

// appendLogMessages encodes page p's lines as frames of channel ch of at
// most about logFrameBytes; the first carries p.Truncated.
func appendLogMessages(out []*message, ch string, p progress.LogPage) []*message {
	chJSON, _ := json.Marshal(ch) // a string: cannot fail
	lines := p.Lines
	truncated := p.Truncated
	for len(lines) > 0 {
		b := make([]byte, 0, min(logFrameBytes+1024, 64+len(chJSON)+len(lines)*128))
		b = append(b, `{"type":"log","channel":`...)
		b = append(b, chJSON...)
		if truncated {
			b = append(b, `,"truncated":true`...)
			truncated = false
		}
		b = append(b, `,"lines":[`...)
		n := 0
		for n < len(lines) && (n == 0 || len(b) < logFrameBytes) {
			if n > 0 {
				b = append(b, ',')
			}
			b = lines[n].AppendJSON(b)
			n++
		}
		b = append(b, "]}"...)
		out = append(out, &message{frame: b, log: ch, logFrame: true, seq: uint64(lines[n-1].N)})
		lines = lines[n:]
	}
	return out
}

// setLogCursor starts ch's cursor at after (< 0: from the first kept line).
func (s *subscriber) setLogCursor(ch string, after int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logNext == nil {
		s.logNext = map[string]int64{}
	}
	s.logNext[ch] = after
}

// logCursor returns the n of the last line sent on ch, and whether s
// still holds ch.
func (s *subscriber) logCursor(ch string) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.logNext[ch]
	return n, ok
}

// moveLogCursor moves ch's cursor from from to to, unless it moved
// meanwhile (a resubscribe) or ch is gone; it reports whether it did.
func (s *subscriber) moveLogCursor(ch string, from, to int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.logNext[ch]; !ok || n != from {
		return false
	}
	s.logNext[ch] = to
	return true
}

// dropLogCursor forgets ch's cursor. s.mu must be held.
func (s *subscriber) dropLogCursorLocked(ch string) {
	delete(s.logNext, ch)
}
