// Package redisbroker is the broker.Broker of several nodes: every update
// goes out as ONE Redis PUBLISH on one channel, and every node's broker,
// subscribed to that channel, hands it to its local subscribers.
//
// It is a subpackage, not a file of package broker, so that go-redis stays
// out of the import graph of the gateway and jobs packages that only need
// the interface.
//
// # Message
//
// A message is package broker's wire format (broker.AppendMessage): a
// small binary header — format version, the publishing node's id, the
// job's seq, id, project and owner — followed by the snapshot's JSON
// exactly as the publisher encoded it (broker.Update.Data); it is not
// encoded again. A receiving node decodes the snapshot once and hands the
// same Update to all its subscribers (a broker.Subscribers). The header
// lets a node recognise its own messages without decoding them.
//
// # Delivery and order
//
// Publish delivers to this node's subscribers itself, synchronously, as
// broker.Local does, then publishes; the node ignores its own messages when
// they come back. Local subscribers therefore see local updates at once and
// keep seeing them while Redis is away. Other nodes receive them from the
// subscription goroutine in the order Redis received them, which for the
// updates of one node is the order they were published. Updates of one job
// published by different nodes are not ordered with each other, and Redis
// may interleave them; seq is what orders them: subscribers keep the
// highest seq of a job and drop lower ones (the gateway's queues do, as do
// clients), so a late lower seq is harmless.
//
// Remote Updates carry no ETA estimator state (progress.Snapshot.Rate is
// not on the wire); subscribers only need the wire form.
//
// # One channel, not sharded
//
// Every node needs every update — any node may have a subscriber for any
// job, project or owner — so every node subscribes to everything. On one
// Redis server, sharded pub/sub (SPUBLISH, Redis 7) behaves as PUBLISH. On a
// Redis Cluster it would keep messages off the cluster bus, but with every
// node subscribed to every shard channel nothing is saved, and the order
// of one job's updates would then depend on all of them hashing to one
// shard. What would scale further is interest-based routing (a node
// subscribes only to the projects its clients watch), which needs
// subscribe/unsubscribe on the fly and a snapshot handoff per channel; one
// channel is the right design until one Redis's pub/sub throughput (about
// 10^5–10^6 small messages/s) is the limit.
//
// # Reconnecting
//
// The subscription lives on one connection. When it fails (Redis restarts,
// the network drops, or the health check finds that a PING sent after an
// idle HealthInterval got no answer within another), the broker drops it
// and subscribes again on a new one, with backoff from 50 ms to 2 s, until
// Close. Updates published by other nodes meanwhile are lost: once the
// subscription is back, the function given to OnReconnect (the
// broker.Reconnecter extra) is called so the node can resend the current
// snapshots to its clients. Ping (the broker.Pinger extra) reports whether
// the subscription is up, for /readyz.
//
// Publish, Subscribe, Ping, Stats and Close are safe for concurrent use.
// The broker runs two goroutines (the subscription and its health check);
// Close stops both and waits for them.
package redisbroker

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/progressd/progressd/internal/broker"
)

const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
	// subscribeTimeout bounds New's first subscription when its context
	// has no deadline of its own.
	subscribeTimeout = 10 * time.Second
	// warnEvery limits how often malformed messages are logged.
	warnEvery = time.Minute
)

// Options configure a Broker. Zero values take the defaults.
type Options struct {
	// Prefix starts the channel name (<Prefix>updates). Default
	// "progressd:". Nodes that share updates must use the same prefix.
	Prefix string
	// HealthInterval is how long the subscription may be idle before the
	// broker PINGs Redis, and how long it waits for the answer before
	// reconnecting. Default 3 s.
	HealthInterval time.Duration
	// Log receives lifecycle and trouble reports. Default slog.Default().
	Log *slog.Logger
}

// Stats are a Broker's counters since it started.
type Stats struct {
	Published  uint64 // updates published to Redis
	Received   uint64 // updates received from other nodes and delivered
	Malformed  uint64 // messages dropped because they could not be decoded
	Reconnects uint64 // times the subscription came back after a loss
	Subscribed bool   // whether the subscription is up now
}

// Broker is the Redis broker.Broker.
type Broker struct {
	rdb     redis.UniversalClient
	channel string
	origin  broker.Origin // this node's id in the header of what it publishes
	opts    Options
	log     *slog.Logger

	subs broker.Subscribers // this node's subscribers
	// onReconnect is what OnReconnect set: called from the subscription
	// goroutine each time the subscription comes back after a loss.
	onReconnect atomic.Pointer[func()]

	// psMu guards ps, the current subscription, which the subscription
	// goroutine replaces on reconnect and Close and the health check
	// close to end it.
	psMu sync.Mutex
	ps   *redis.PubSub

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	lastRead   atomic.Int64 // unix nanos of the last thing read from the subscription
	up         atomic.Bool
	downSince  atomic.Int64 // unix nanos; valid while !up
	lastErr    atomic.Pointer[error]
	lastWarnNs atomic.Int64

	published, received, malformed, reconnects atomic.Uint64
}

var _ broker.Broker = (*Broker)(nil)

// New subscribes to the updates channel on rdb and returns once the
// subscription is confirmed, so no update published after New returns is
// missed. The caller owns rdb and closes it after Close.
func New(ctx context.Context, rdb redis.UniversalClient, o Options) (*Broker, error) {
	if o.Prefix == "" {
		o.Prefix = "progressd:"
	}
	if o.HealthInterval <= 0 {
		o.HealthInterval = 3 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	b := &Broker{
		rdb:     rdb,
		channel: o.Prefix + "updates",
		opts:    o,
		log:     o.Log.With("component", "redisbroker"),
	}
	if _, err := rand.Read(b.origin[:]); err != nil {
		return nil, fmt.Errorf("redisbroker: node id: %w", err)
	}

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, subscribeTimeout)
		defer cancel()
	}
	ps := rdb.Subscribe(ctx)
	err := ps.Subscribe(ctx, b.channel)
	if err == nil {
		err = awaitSubscription(ctx, ps, b.channel)
	}
	if err != nil {
		_ = ps.Close()
		return nil, fmt.Errorf("redisbroker: subscribe to %s: %w (is Redis running at the --redis address?)", b.channel, err)
	}
	b.ps = ps
	b.up.Store(true)
	b.lastRead.Store(time.Now().UnixNano())
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.wg.Add(2)
	go b.receive(ps)
	go b.healthCheck()
	return b, nil
}

// awaitSubscription reads until Redis confirms the subscription.
func awaitSubscription(ctx context.Context, ps *redis.PubSub, channel string) error {
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			return err
		}
		if s, ok := msg.(*redis.Subscription); ok && s.Kind == "subscribe" && s.Channel == channel {
			return nil
		}
	}
}

// Channel is the Redis channel the broker publishes and subscribes on.
func (b *Broker) Channel() string { return b.channel }

// Publish implements broker.Broker: it calls this node's subscribers, then
// sends u to the other nodes in one PUBLISH. An error means other nodes
// did not get u; local subscribers did. u.Data is encoded here if the
// publisher left it empty, once for both.
func (b *Broker) Publish(ctx context.Context, u broker.Update) error {
	if len(u.Data) == 0 && !u.Log {
		data, err := u.Snapshot.AppendJSON(make([]byte, 0, 512))
		if err != nil {
			return fmt.Errorf("redisbroker: encode job %s seq %d: %w", u.Snapshot.JobID, u.Snapshot.Seq, err)
		}
		u.Data = data
	}
	if err := b.subs.Deliver(u); err != nil {
		return err
	}
	msg, err := broker.AppendMessage(make([]byte, 0, broker.MessageSize(&u)), b.origin, &u)
	if err != nil {
		return fmt.Errorf("redisbroker: %w", err)
	}
	if err := b.rdb.Publish(ctx, b.channel, msg).Err(); err != nil {
		return fmt.Errorf("redisbroker: publish job %s seq %d: %w (other nodes miss this update until the next)", u.Snapshot.JobID, u.Snapshot.Seq, err)
	}
	b.published.Add(1)
	return nil
}

// Subscribe implements broker.Broker.
func (b *Broker) Subscribe(fn func(broker.Update)) (cancel func()) { return b.subs.Add(fn) }

// OnReconnect implements broker.Reconnecter: fn is called, from the
// subscription goroutine and before any update received on the new
// subscription is delivered, each time the subscription comes back after
// it was lost, since updates from other nodes may have been missed. It
// must not block; start the resync elsewhere. It may be set at any time;
// the node sets it once the gateway exists.
func (b *Broker) OnReconnect(fn func()) { b.onReconnect.Store(&fn) }

// Ping reports whether the subscription is up: while it is not, updates
// from other nodes do not reach this node's clients.
func (b *Broker) Ping(context.Context) error {
	if b.up.Load() {
		return nil
	}
	if b.ctx.Err() != nil {
		return broker.ErrClosed
	}
	cause := "unknown"
	if e := b.lastErr.Load(); e != nil {
		cause = (*e).Error()
	}
	since := time.Since(time.Unix(0, b.downSince.Load())).Round(time.Millisecond)
	return fmt.Errorf("redisbroker: not subscribed to %s for %v (%s); updates from other nodes are not arriving, reconnecting", b.channel, since, cause)
}

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats {
	return Stats{
		Published:  b.published.Load(),
		Received:   b.received.Load(),
		Malformed:  b.malformed.Load(),
		Reconnects: b.reconnects.Load(),
		Subscribed: b.up.Load(),
	}
}

// Close implements broker.Broker: it ends the subscription, waits for the
// broker's goroutines and drops every subscriber. It does not close the
// Redis client. Calling it again does nothing.
func (b *Broker) Close() error {
	b.once.Do(func() {
		b.subs.Close()

		b.cancel()
		b.psMu.Lock()
		if b.ps != nil {
			_ = b.ps.Close() // wakes the subscription goroutine's read
		}
		b.psMu.Unlock()
		b.wg.Wait()
		b.up.Store(false)
	})
	return nil
}

// receive reads the subscription until Close, replacing it when it fails.
func (b *Broker) receive(ps *redis.PubSub) {
	defer b.wg.Done()
	backoff := minBackoff
	for {
		msg, err := ps.Receive(b.ctx)
		if err != nil {
			_ = ps.Close()
			if b.ctx.Err() != nil {
				return
			}
			b.markDown(err)
			if !b.wait(backoff) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			if ps = b.resubscribe(); ps == nil {
				return
			}
			continue
		}
		b.lastRead.Store(time.Now().UnixNano())
		switch m := msg.(type) {
		case *redis.Message:
			b.deliver(m.Payload)
		case *redis.Subscription:
			// The first confirmation was read by New: any other means a
			// new connection, and a gap in which updates were missed.
			if m.Kind == "subscribe" && m.Channel == b.channel {
				backoff = minBackoff
				b.markUp()
			}
		}
	}
}

// resubscribe makes the next subscription, or returns nil after Close.
// It is made under psMu so that Close either sees it (and closes it) or
// has already canceled b.ctx.
func (b *Broker) resubscribe() *redis.PubSub {
	b.psMu.Lock()
	defer b.psMu.Unlock()
	if b.ctx.Err() != nil {
		return nil
	}
	b.ps = b.rdb.Subscribe(b.ctx)
	// Sent now or, if Redis is still away, when the next Receive
	// reconnects; its confirmation comes back through Receive.
	_ = b.ps.Subscribe(b.ctx, b.channel)
	return b.ps
}

// wait sleeps for d, or returns false at once when Close is called.
func (b *Broker) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.ctx.Done():
		return false
	}
}

func (b *Broker) markDown(err error) {
	b.lastErr.Store(&err)
	if b.up.Swap(false) {
		b.downSince.Store(time.Now().UnixNano())
		b.log.Warn("subscription lost; reconnecting (updates from other nodes are missed until it is back)",
			"channel", b.channel, "err", err)
	} else {
		b.log.Debug("resubscribe failed", "channel", b.channel, "err", err)
	}
}

func (b *Broker) markUp() {
	wasUp := b.up.Swap(true)
	b.reconnects.Add(1)
	down := time.Duration(0)
	if !wasUp {
		down = time.Since(time.Unix(0, b.downSince.Load())).Round(time.Millisecond)
	}
	b.log.Info("subscription restored", "channel", b.channel, "down_for", down)
	if fn := b.onReconnect.Load(); fn != nil {
		(*fn)()
	}
}

// healthCheck PINGs over an idle subscription and ends the subscription
// when Redis has not answered within another interval: a connection that
// died without a reset (a network partition, a frozen server) would
// otherwise look idle forever.
func (b *Broker) healthCheck() {
	defer b.wg.Done()
	every := b.opts.HealthInterval
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		if !b.up.Load() {
			continue // the subscription goroutine is reconnecting
		}
		idle := time.Since(time.Unix(0, b.lastRead.Load()))
		b.psMu.Lock()
		ps := b.ps
		b.psMu.Unlock()
		switch {
		case idle >= 2*every:
			b.log.Warn("no answer from Redis on the subscription; reconnecting", "channel", b.channel, "idle", idle.Round(time.Millisecond))
			_ = ps.Close() // the subscription goroutine sees the error and resubscribes
		case idle >= every:
			ctx, cancel := context.WithTimeout(b.ctx, every)
			_ = ps.Ping(ctx) // the answer arrives through Receive
			cancel()
		}
	}
}

// deliver decodes a message from another node and hands it to every
// subscriber. This node's own messages were delivered by Publish.
func (b *Broker) deliver(payload string) {
	h, data, err := broker.ParseHeader(payload)
	if err != nil {
		b.dropMalformed(err)
		return
	}
	if h.Origin == b.origin {
		return
	}
	u, err := broker.DecodeUpdate(h, data)
	if err != nil {
		b.dropMalformed(err)
		return
	}
	b.received.Add(1)
	_ = b.subs.Deliver(u) // ErrClosed: Close is under way, and drops it
}

func (b *Broker) dropMalformed(err error) {
	b.malformed.Add(1)
	now := time.Now().UnixNano()
	last := b.lastWarnNs.Load()
	if now-last < int64(warnEvery) || !b.lastWarnNs.CompareAndSwap(last, now) {
		return
	}
	b.log.Warn("dropped a malformed message; do all nodes run the same progressd version?",
		"channel", b.channel, "err", err, "malformed_total", b.malformed.Load())
}
