package gateway

import (
	"context"

	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/progress"
)

// Resync sends every subscriber the current snapshots of every channel it
// holds, as a subscribe does. The node calls it when a cross-node broker
// comes back after an outage: updates published on other nodes meanwhile
// never arrived, and without a resync a client would see them only with
// the job's next change — a terminal state reached during the outage never.
// Each channel's snapshots are read once and go through the same path as a
// live update (encoded once per channel, project: filtered by visibility,
// seq dropping anything a client already has). Safe to call at any time.
func (g *Gateway) Resync() {
	chans := g.hub.channelNames()
	for _, ch := range chans {
		if g.ctx.Err() != nil {
			return
		}
		kind, key, _ := auth.ParseChannel(ch)
		if kind == auth.LogsChannel {
			g.resyncLogs(key)
			continue
		}
		snaps := g.resyncRead(ch)
		for i := range snaps {
			g.hub.publishTo(ch, &broker.Update{Snapshot: snaps[i]}, filtered(kind))
		}
	}
	g.log.Info("resynced subscribers from the snapshot store", "channels", len(chans))
}

// resyncRead reads the current snapshots channel ch covers; on a store
// error it logs and returns none (the next update will carry the state).
func (g *Gateway) resyncRead(ch string) []progress.Snapshot {
	kind, key, err := auth.ParseChannel(ch)
	if err != nil {
		return nil // hub channels were parsed on subscribe
	}
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.RequestTimeout)
	defer cancel()
	switch kind {
	case auth.JobChannel:
		snap, err := g.cfg.Jobs.Get(ctx, key)
		if err != nil {
			g.warnf("resync: read job", "job", key, "err", err)
			return nil
		}
		return []progress.Snapshot{snap}
	case auth.ProjectChannel, auth.UserChannel, auth.ChildrenChannel, auth.TagChannel:
		f := progress.Filter{Project: key}
		switch kind {
		case auth.UserChannel:
			f = progress.Filter{Owner: key}
		case auth.ChildrenChannel:
			f = progress.Filter{Parent: key}
		case auth.TagChannel:
			f = progress.Filter{Tag: key}
		}
		snaps, err := g.cfg.Jobs.Recent(ctx, f, g.cfg.RecentLimit)
		if err != nil {
			g.warnf("resync: read recent jobs", "channel", ch, "err", err)
			return nil
		}
		return snaps
	}
	return nil
}

// resyncLogs queues a mark of the job's newest line for its logs:
// subscribers: lines appended on other nodes during the outage are sent.
func (g *Gateway) resyncLogs(job string) {
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.RequestTimeout)
	defer cancel()
	p, err := g.cfg.Jobs.Logs(ctx, job, -1, 1)
	if err != nil {
		g.warnf("resync: read log lines", "job", job, "err", err)
		return
	}
	if p.Last > 0 {
		g.hub.publishLog(broker.Update{Log: true, Snapshot: progress.Snapshot{JobID: job, Seq: uint64(p.Last)}})
	}
}
