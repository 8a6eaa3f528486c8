// Package broker carries every update from the node where it happened to the
// gateway of every node: in-process with Local, across nodes with Redis
// pub/sub. A snapshot is encoded once, on its way in or where it is first
// needed, and the same bytes reach every subscriber.
package broker

import (
	"context"

	"github.com/progressd/progressd/internal/progress"
)

// Update is one published change of a job.
type Update struct {
	// Snapshot is the job's new state; receivers must not modify it.
	Snapshot progress.Snapshot
	// Data is Snapshot encoded as JSON, once: by the publisher, or, if it
	// left Data empty, by the broker (Redis: for its message) or the
	// receiver (in process: the gateway, only for a job someone watches).
	Data []byte
	// Log marks a log notice instead of a snapshot: the job (Snapshot's
	// JobID, Project and Owner) has log lines up to n = Snapshot.Seq, to
	// be read from the log store by the logs:<id> subscribers. Data is
	// empty. Receivers that want snapshots skip it.
	Log bool
}

// Broker publishes updates to every subscriber on every node.
type Broker interface {
	// Publish sends u to every subscriber. It does not wait for them to
	// process it.
	Publish(ctx context.Context, u Update) error
	// Subscribe registers fn to be called with every update, in seq order
	// per job. fn must not block: it should only enqueue. The returned
	// function unregisters fn.
	Subscribe(fn func(Update)) (cancel func())
	// Close stops delivery. Subscriptions end with it.
	Close() error
}

// The extras a broker may have, found by type assertion where the node is
// wired (as mercure's transports do), so that Broker stays three methods
// and a broker without them needs no stubs.

// Pinger is a broker that can be down while the node runs (its
// subscription to another process lost): /readyz reports Ping's error.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Reconnecter is a broker that can miss updates from other nodes while it
// reconnects. The node registers, once the gateway exists, what to do
// when it is back (resend every subscriber its current snapshots).
type Reconnecter interface {
	// OnReconnect sets fn, called after each reconnect before any update
	// received on the new connection is delivered. fn must not block.
	// Set it before the broker can lose its connection matters to anyone:
	// a reconnect before fn is set calls nothing.
	OnReconnect(fn func())
}
