package gateway

import (
	"context"
	"errors"
	"strings"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/progress"
)

// target is a channel a principal was allowed to subscribe to.
type target struct {
	name string
	kind auth.ChannelKind
	key  string
	// after is, for logs:, the last line the subscriber has (< 0: none).
	after int64
}

// authorize checks that p may subscribe to channel ch (SPEC.md,
// "Visibility"): job: and children: of a job p owns (not_found if
// unknown, forbidden if another user's), user: of p itself, project: and
// tag: always; a scoped principal (a stage's token, an end user's) only
// the channels its scope names, and still only of jobs it owns.
func (g *Gateway) authorize(p auth.Principal, ch string) (target, *protoError) {
	kind, key, err := auth.ParseChannel(ch)
	if err != nil {
		return target{}, &protoError{Code: CodeBadRequest, Message: err.Error()}
	}
	t := target{name: ch, kind: kind, key: key, after: -1}
	if !p.MaySubscribe(ch) {
		// Refused before any read: the answer is the same whether the
		// job exists or not.
		return t, errorf(CodeForbidden, "%s: %s", ch, p.ScopeNote())
	}
	switch kind {
	case auth.UserChannel:
		if !p.MaySubscribeUser(key) {
			return t, errorf(CodeForbidden, "%s: a user may only subscribe to its own user channel, user:%s", ch, p.Subject)
		}
	case auth.JobChannel, auth.ChildrenChannel, auth.LogsChannel:
		// children:<id> and logs:<id> have the visibility of job:<id>.
		// Owns, not CanSee: a scope naming children:<id> need not name
		// the parent itself.
		snap, perr := g.getJob(key)
		if perr != nil {
			return t, perr
		}
		if !p.Owns(snap) {
			return t, errorf(CodeForbidden, "%s: the job belongs to another user", ch)
		}
	}
	// project: and tag: are open (to a scoped principal, when named):
	// only the jobs CanSee allows pass.
	return t, nil
}

// recheck drops every subscription of s that next, a refreshed token of
// prev's user, does not allow (SPEC.md part two: "A token refreshed
// in-band with fewer rights ... loses the subscriptions it no longer
// allows"): each is unsubscribed first, so no update of it follows, and
// then named in an error frame. The new principal is already in force,
// so project: channels carry only what it may see from now on. Runs on
// the connection's reader goroutine, like subscribe.
func (g *Gateway) recheck(s *subscriber, prev, next auth.Principal) {
	for _, ch := range s.channelNames() {
		perr := g.reauthorize(prev, next, ch)
		if perr == nil {
			if prev.Admin && !next.Admin && !strings.HasPrefix(ch, "job:") {
				// Kept, but other users' jobs queued under the admin
				// token (project:, tag:, children:) must not go out
				// after the refresh either.
				s.dropUnseen(ch, next.Subject)
			}
			continue
		}
		if g.hub.unsubscribe(ch, s) {
			g.m.revoked.Inc()
			s.reply(encodeChannelError(ch, perr))
		}
	}
}

// reauthorize checks channel ch, which prev was allowed, for next, a token
// of the same user. A job: channel needs no read unless the user lost its
// admin rights: the job's owner, checked on subscribe, does not change.
// A job that can no longer be read is dropped: the check fails closed.
func (g *Gateway) reauthorize(prev, next auth.Principal, ch string) *protoError {
	kind, _, err := auth.ParseChannel(ch)
	if err == nil && kind == auth.JobChannel && next.MaySubscribe(ch) && (next.Admin || !prev.Admin) {
		return nil
	}
	_, perr := g.authorize(next, ch)
	return perr
}

// getJob reads one job for authorize and maps the failure to a reply.
func (g *Gateway) getJob(id string) (progress.Snapshot, *protoError) {
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.RequestTimeout)
	defer cancel()
	snap, err := g.cfg.Jobs.Get(ctx, id)
	switch {
	case errors.Is(err, progress.ErrNotFound):
		return snap, errorf(CodeNotFound, "job:%s: no such job", id)
	case err != nil:
		g.warnf("read job for a subscriber", "job", id, "err", err)
		return snap, errorf(CodeInternal, "job:%s: the job store did not answer; retry later", id)
	}
	return snap, nil
}

// current reads the snapshots a new subscriber of t is sent first: the
// job itself, or the active and recently finished jobs of a project, user,
// parent or tag that p may see.
func (g *Gateway) current(p auth.Principal, t target) ([]progress.Snapshot, *protoError) {
	if t.kind == auth.JobChannel {
		snap, perr := g.getJob(t.key)
		if perr != nil {
			return nil, perr
		}
		return []progress.Snapshot{snap}, nil
	}
	f := progress.Filter{Project: t.key}
	switch {
	case t.kind == auth.UserChannel:
		f = progress.Filter{Owner: t.key}
	case t.kind == auth.ChildrenChannel:
		f = progress.Filter{Parent: t.key}
	case t.kind == auth.TagChannel:
		f = progress.Filter{Tag: t.key}
		if !p.Admin {
			f.Owner = p.Subject
		}
	case !p.Admin:
		// Only the caller's own jobs of the project: read them as such,
		// so other users' jobs cannot crowd them out of the limit.
		f.Owner = p.Subject
	}
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.RequestTimeout)
	defer cancel()
	snaps, err := g.cfg.Jobs.Recent(ctx, f, g.cfg.RecentLimit)
	if err != nil {
		g.warnf("read recent jobs for a subscriber", "channel", t.name, "err", err)
		return nil, errorf(CodeInternal, "%s: the job store did not answer; retry later", t.name)
	}
	visible := snaps[:0]
	for _, s := range snaps {
		if p.CanSee(s) {
			visible = append(visible, s)
		}
	}
	// Recent returns every active job. More than half the queue's bound
	// would close the new subscriber as too slow (4008) before it could
	// read anything, and a reconnecting client would loop; send the newest
	// (Recent's order) and say so in the log instead.
	if limit := max(1, g.cfg.MaxQueuedFrames/2); len(visible) > limit {
		g.warnf("channel covers more active jobs than a subscriber is sent at once; sending the newest",
			"channel", t.name, "jobs", len(visible), "sent", limit)
		visible = visible[:limit]
	}
	return visible, nil
}

// join subscribes s to the authorized channel t without a gap (mercure
// #178): it registers s in the hub first, with t held, then reads the
// current snapshots and queues them; every update published from the
// moment of registration is queued too, and seq order makes the overlap
// harmless. release then queues reply (nil: none) and, after it, all of
// t's updates. On a read error s is left as it was and the error returned.
func (g *Gateway) join(s *subscriber, p auth.Principal, t target, reply func(*protoError) []byte) *protoError {
	if t.kind == auth.LogsChannel {
		return g.joinLogs(s, t, reply)
	}
	s.hold(t.name)
	added := g.hub.subscribe(t.name, s)
	snaps, perr := g.current(p, t)
	if perr != nil {
		if added {
			g.hub.unsubscribe(t.name, s)
		}
		s.release(t.name, reply(perr))
		return perr
	}
	for i := range snaps {
		data, err := snaps[i].AppendJSON(nil)
		if err != nil {
			continue // cannot happen: snapshots encode
		}
		s.deliver(t.name, snaps[i].JobID, newUpdate(t.name, &snaps[i], data))
	}
	s.release(t.name, reply(nil))
	return nil
}
