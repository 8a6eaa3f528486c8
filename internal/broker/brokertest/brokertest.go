// Package brokertest is the one test suite every broker.Broker passes
// (Local, redisbroker, and any broker added later), so that what the
// gateway relies on — per-job order, synchronous local delivery, a Close
// that ends everything — cannot differ between them.
package brokertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/testsvc"
)

// Nodes opens brokers that share one medium, as the nodes of one cluster
// do: what one publishes reaches the others. For a broker that cannot
// cross processes (Local) it returns a new broker each call and Shared is
// false. The suite closes every broker it opens; the harness may close
// them again in a cleanup.
type Nodes struct {
	Open   func(t *testing.T) broker.Broker
	Shared bool
}

// Run runs the suite; nodes is called once per subtest and returns the
// opener of that subtest's brokers (a fresh medium each time: a new
// channel prefix, for example).
func Run(t *testing.T, nodes func(t *testing.T) Nodes) {
	t.Run("PerJobOrder", func(t *testing.T) { testPerJobOrder(t, nodes(t)) })
	t.Run("LocalDeliveryIsSynchronous", func(t *testing.T) { testSynchronous(t, nodes(t)) })
	t.Run("CancelStopsDelivery", func(t *testing.T) { testCancel(t, nodes(t)) })
	t.Run("CloseEndsEverything", func(t *testing.T) { testClose(t, nodes(t)) })
}

// waitTimeout bounds every wait for a delivery from another node.
const waitTimeout = 15 * time.Second

// Update returns an update of job at seq, encoded as the job service
// encodes it.
func Update(t testing.TB, job string, seq uint64) broker.Update {
	t.Helper()
	s, err := progress.New(progress.NewJob{
		ID: job, Project: "p", Owner: "alice",
		Stages: []progress.StageSpec{{Name: "a"}, {Name: "b"}},
	}, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	s.Seq = seq
	s.Message = fmt.Sprintf("%s at %d", job, seq)
	data, err := s.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	return broker.Update{Snapshot: s, Data: data}
}

// Recorder is a subscriber that keeps what it receives.
type Recorder struct {
	mu      sync.Mutex
	updates []broker.Update
}

// Add is the subscriber function.
func (r *Recorder) Add(u broker.Update) {
	r.mu.Lock()
	r.updates = append(r.updates, u)
	r.mu.Unlock()
}

// Len returns how many updates r received.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.updates)
}

// All returns a copy of what r received, in order.
func (r *Recorder) All() []broker.Update {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]broker.Update(nil), r.updates...)
}

// WaitLen waits until r holds at least n updates.
func (r *Recorder) WaitLen(t testing.TB, n int) {
	t.Helper()
	err := testsvc.WaitFor(waitTimeout, func() error {
		if got := r.Len(); got < n {
			return fmt.Errorf("%d of %d updates received", got, n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// open returns the publishing node and, with a shared medium, a second
// node; both are closed when the test ends.
func open(t *testing.T, n Nodes) (pub broker.Broker, all []broker.Broker) {
	pub = n.Open(t)
	all = []broker.Broker{pub}
	if n.Shared {
		all = append(all, n.Open(t))
	}
	t.Cleanup(func() {
		for _, b := range all {
			_ = b.Close()
		}
	})
	return pub, all
}

// testPerJobOrder publishes 400 updates of four jobs on one node: every
// node's subscriber gets each once, in seq order per job, with the
// publisher's bytes.
func testPerJobOrder(t *testing.T, n Nodes) {
	pub, nodes := open(t, n)
	recs := make([]*Recorder, len(nodes))
	for i, b := range nodes {
		recs[i] = &Recorder{}
		b.Subscribe(recs[i].Add)
	}
	const total = 400
	sent := map[string]string{}
	for i := range total {
		u := Update(t, fmt.Sprintf("job-%d", i%4), uint64(1+i/4))
		sent[fmt.Sprint(u.Snapshot.JobID, "/", u.Snapshot.Seq)] = string(u.Data)
		if err := pub.Publish(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range recs {
		r.WaitLen(t, total)
		last := map[string]uint64{}
		for _, u := range r.All() {
			id, seq := u.Snapshot.JobID, u.Snapshot.Seq
			if seq <= last[id] {
				t.Fatalf("node %d: job %s seq %d after %d", i, id, seq, last[id])
			}
			last[id] = seq
			if want := sent[fmt.Sprint(id, "/", seq)]; string(u.Data) != want {
				t.Fatalf("node %d: job %s seq %d: data %s, published %s", i, id, seq, u.Data, want)
			}
		}
	}
	// Nothing more arrives: a probe published after the rest arrives
	// last, and each node holds exactly one copy of every update.
	if err := pub.Publish(context.Background(), Update(t, "probe", 1)); err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		r.WaitLen(t, total+1)
		if got := r.Len(); got != total+1 {
			t.Fatalf("node %d received %d updates, want %d: a node delivered one twice", i, got, total+1)
		}
	}
}

// testSynchronous checks that when Publish returns, every subscriber of
// the publishing node has been called: the gateway's queues rely on it
// for a node's own updates.
func testSynchronous(t *testing.T, n Nodes) {
	pub, _ := open(t, n)
	var a, b Recorder
	pub.Subscribe(a.Add)
	pub.Subscribe(b.Add)
	for seq := range uint64(20) {
		if err := pub.Publish(context.Background(), Update(t, "job", seq+1)); err != nil {
			t.Fatal(err)
		}
		if a.Len() != int(seq+1) || b.Len() != int(seq+1) {
			t.Fatalf("after Publish of seq %d: subscribers hold %d and %d updates, want %d", seq+1, a.Len(), b.Len(), seq+1)
		}
	}
}

// testCancel checks that a canceled subscriber is not called again, on
// the publishing node and on others, that the other subscribers go on, and
// that cancel may be called twice.
func testCancel(t *testing.T, n Nodes) {
	pub, nodes := open(t, n)
	kept := make([]*Recorder, len(nodes))
	dropped := make([]*Recorder, len(nodes))
	for i, b := range nodes {
		kept[i], dropped[i] = &Recorder{}, &Recorder{}
		b.Subscribe(kept[i].Add)
		cancel := b.Subscribe(dropped[i].Add)
		cancel()
		cancel()
	}
	if err := pub.Publish(context.Background(), Update(t, "job", 1)); err != nil {
		t.Fatal(err)
	}
	for i := range nodes {
		kept[i].WaitLen(t, 1) // delivered to the node: the canceled one had its turn
		if got := dropped[i].Len(); got != 0 {
			t.Fatalf("node %d: a canceled subscriber received %d updates", i, got)
		}
	}
}

// testClose checks Close: Publish answers ErrClosed afterwards, a second
// Close succeeds, subscribers of the closed node hear nothing more (not
// even from another node), a subscriber added after Close is never called,
// and the other nodes go on.
func testClose(t *testing.T, n Nodes) {
	pub, nodes := open(t, n)
	closed := nodes[len(nodes)-1] // with one node, the publisher itself
	var before, after Recorder
	closed.Subscribe(before.Add)
	for range 2 {
		if err := closed.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if err := closed.Publish(context.Background(), Update(t, "job", 1)); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Publish after Close = %v, want ErrClosed", err)
	}
	cancel := closed.Subscribe(after.Add)
	cancel()
	closed.Subscribe(after.Add)
	if before.Len() != 0 || after.Len() != 0 {
		t.Fatalf("subscribers of a closed broker were called: %d and %d updates", before.Len(), after.Len())
	}
	if closed == pub {
		return
	}
	// Another node's update reaches that node's subscriber; the closed
	// node's get nothing (a Close that left the node receiving would show
	// here when its delivery beats this check, as it mostly does).
	var live Recorder
	pub.Subscribe(live.Add)
	if err := pub.Publish(context.Background(), Update(t, "job", 2)); err != nil {
		t.Fatal(err)
	}
	live.WaitLen(t, 1)
	if before.Len() != 0 || after.Len() != 0 {
		t.Fatalf("subscribers of a closed broker were called: %d and %d updates", before.Len(), after.Len())
	}
}
