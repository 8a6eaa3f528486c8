package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/broker/brokertest"
	"github.com/progressd/progressd/internal/broker/redisbroker"
	"github.com/progressd/progressd/internal/testsvc"
)

func TestMain(m *testing.M) {
	// go-redis reports failed dials itself; the restart tests cause many.
	redis.SetLogger(discardRedisLog{})
	goleak.VerifyTestMain(m)
}

type discardRedisLog struct{}

func (discardRedisLog) Printf(context.Context, string, ...any) {}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newNode starts a broker with a Redis client of its own: one node.
func newNode(t testing.TB, url string, o redisbroker.Options) *redisbroker.Broker {
	t.Helper()
	if o.Log == nil {
		o.Log = quiet
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := redisbroker.New(ctx, testsvc.RedisClient(t, url), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() }) // before the client closes: cleanups run last-in first-out
	return b
}

// sharedNodes starts n brokers on the shared Redis with a prefix (and so a
// channel) of this test's own.
func sharedNodes(t testing.TB, n int) []*redisbroker.Broker {
	t.Helper()
	url := testsvc.RedisURL(t)
	prefix := testsvc.RedisPrefix(t, url)
	nodes := make([]*redisbroker.Broker, n)
	for i := range nodes {
		nodes[i] = newNode(t, url, redisbroker.Options{Prefix: prefix})
	}
	return nodes
}

// update is brokertest.Update: one update of job at seq.
var update = brokertest.Update

// TestConformance runs the suite every broker passes, with two nodes on
// a channel of each subtest's own.
func TestConformance(t *testing.T) {
	url := testsvc.RedisURL(t)
	brokertest.Run(t, func(t *testing.T) brokertest.Nodes {
		prefix := testsvc.RedisPrefix(t, url)
		return brokertest.Nodes{Shared: true, Open: func(t *testing.T) broker.Broker {
			return newNode(t, url, redisbroker.Options{Prefix: prefix})
		}}
	})
}

// TestStats: the publisher counts what it published, the receiver what
// it received; neither counts the publisher's own messages coming back.
func TestStats(t *testing.T) {
	nodes := sharedNodes(t, 2)
	var r brokertest.Recorder
	nodes[1].Subscribe(r.Add)
	const total = 50
	for i := range total {
		if err := nodes[0].Publish(t.Context(), update(t, "job-1", uint64(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	r.WaitLen(t, total)
	if s := nodes[1].Stats(); s.Received != total || s.Malformed != 0 || !s.Subscribed {
		t.Fatalf("receiver stats %+v", s)
	}
	if s := nodes[0].Stats(); s.Published != total || s.Received != 0 {
		t.Fatalf("publisher stats %+v", s)
	}
}

// TestEveryNodePublishes: updates published on any node reach every node.
func TestEveryNodePublishes(t *testing.T) {
	nodes := sharedNodes(t, 3)
	recs := make([]*brokertest.Recorder, len(nodes))
	for i, n := range nodes {
		recs[i] = &brokertest.Recorder{}
		n.Subscribe(recs[i].Add)
	}
	for i, n := range nodes {
		for seq := range uint64(10) {
			if err := n.Publish(t.Context(), update(t, fmt.Sprintf("job-%d", i), seq+1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, r := range recs {
		r.WaitLen(t, 30)
	}
}

// TestPingAfterClose: a closed broker is not ready.
func TestPingAfterClose(t *testing.T) {
	n := sharedNodes(t, 1)[0]
	if err := n.Ping(t.Context()); err != nil {
		t.Fatalf("Ping of a live broker: %v", err)
	}
	_ = n.Close()
	if err := n.Ping(t.Context()); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Ping after Close = %v, want ErrClosed", err)
	}
}

// TestMalformedMessagesAreDropped: what another program (or version)
// publishes on the channel is counted and dropped, and delivery goes on.
func TestMalformedMessagesAreDropped(t *testing.T) {
	url := testsvc.RedisURL(t)
	prefix := testsvc.RedisPrefix(t, url)
	n := newNode(t, url, redisbroker.Options{Prefix: prefix})
	var r brokertest.Recorder
	n.Subscribe(r.Add)
	raw := testsvc.RedisClient(t, url)
	for _, msg := range []string{"", "hello", "\x01short", "\x02" + strings.Repeat("x", 40), "\x01" + strings.Repeat("o", 16) + "\x02\x05job-1\x01p\x05alice{not json"} {
		if err := raw.Publish(t.Context(), n.Channel(), msg).Err(); err != nil {
			t.Fatal(err)
		}
	}
	other := newNode(t, url, redisbroker.Options{Prefix: prefix})
	if err := other.Publish(t.Context(), update(t, "job-1", 3)); err != nil {
		t.Fatal(err)
	}
	r.WaitLen(t, 1)
	if s := n.Stats(); s.Malformed != 5 || s.Received != 1 {
		t.Fatalf("stats %+v, want 5 malformed and 1 received", s)
	}
}

func TestNewFailsWhenRedisIsAway(t *testing.T) {
	rdb := testsvc.RedisClient(t, "redis://127.0.0.1:1/0") // nothing listens on port 1
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	b, err := redisbroker.New(ctx, rdb, redisbroker.Options{Log: quiet})
	if err == nil {
		b.Close()
		t.Fatal("New succeeded without Redis")
	}
	if !strings.Contains(err.Error(), "is Redis running") {
		t.Fatalf("error %q does not say what to check", err)
	}
}

// reconnectCounter counts OnReconnect calls.
type reconnectCounter struct{ n atomic.Int64 }

func (c *reconnectCounter) inc() { c.n.Add(1) }

func (c *reconnectCounter) waitFor(t testing.TB, n int64) {
	t.Helper()
	if err := testsvc.WaitFor(20*time.Second, func() error {
		if got := c.n.Load(); got < n {
			return fmt.Errorf("%d reconnects, want %d", got, n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// publishUntil publishes fresh updates on from until r holds want of them:
// right after a restart the publisher's own pooled connections may still
// be stale, and the first attempts may fail.
func publishUntil(t *testing.T, from *redisbroker.Broker, r *brokertest.Recorder, want int, seq *uint64) {
	t.Helper()
	err := testsvc.WaitFor(20*time.Second, func() error {
		*seq++
		_ = from.Publish(t.Context(), update(t, "job-1", *seq))
		if r.Len() < want {
			return testsvc.ErrNotYet
		}
		return nil
	})
	if err != nil {
		t.Fatalf("no update arrived: %v", err)
	}
}

// TestRedisRestart restarts a redis-server of the test's own: both nodes
// notice, report it in Ping, resubscribe by themselves, call OnReconnect,
// and updates flow again.
func TestRedisRestart(t *testing.T) {
	srv := testsvc.StartRedis(t)
	var recA, recB reconnectCounter
	a := newNode(t, srv.URL(), redisbroker.Options{})
	a.OnReconnect(recA.inc)
	b := newNode(t, srv.URL(), redisbroker.Options{})
	b.OnReconnect(recB.inc)
	var got brokertest.Recorder
	b.Subscribe(got.Add)
	seq := uint64(0)
	publishUntil(t, a, &got, 1, &seq)

	srv.Stop()
	if err := testsvc.WaitFor(10*time.Second, func() error {
		if b.Ping(t.Context()) == nil {
			return errors.New("Ping still reports the subscription up")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("while Redis is down: %v", b.Ping(t.Context()))
	if err := a.Publish(t.Context(), update(t, "job-1", 100)); err == nil {
		t.Error("Publish succeeded with Redis down")
	}

	srv.Start()
	recA.waitFor(t, 1)
	recB.waitFor(t, 1)
	if err := b.Ping(t.Context()); err != nil {
		t.Fatalf("Ping after the restart: %v", err)
	}
	seq = 200
	publishUntil(t, a, &got, got.Len()+1, &seq)
	if s := b.Stats(); s.Reconnects != 1 || !s.Subscribed {
		t.Fatalf("stats after one restart %+v", s)
	}
}

// TestSilentConnectionIsReplaced freezes a redis-server of the test's own
// (CLIENT PAUSE): the connection stays open but nothing answers, which only
// the health check can notice. The broker must resubscribe on its own once
// the server answers again.
func TestSilentConnectionIsReplaced(t *testing.T) {
	srv := testsvc.StartRedis(t)
	var rec reconnectCounter
	b := newNode(t, srv.URL(), redisbroker.Options{HealthInterval: 100 * time.Millisecond})
	b.OnReconnect(rec.inc)
	admin := testsvc.RedisClient(t, srv.URL())
	if err := admin.Do(t.Context(), "CLIENT", "PAUSE", "1500", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	if err := testsvc.WaitFor(5*time.Second, func() error {
		if b.Ping(t.Context()) == nil {
			return errors.New("the silent subscription is still considered up")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, 1)
	other := newNode(t, srv.URL(), redisbroker.Options{})
	var got brokertest.Recorder
	b.Subscribe(got.Add)
	seq := uint64(0)
	publishUntil(t, other, &got, 1, &seq)
}

// BenchmarkPublishReceive measures one update's latency from Publish on one
// node to delivery on another, one update at a time.
func BenchmarkPublishReceive(b *testing.B) {
	nodes := sharedNodes(b, 2)
	got := make(chan struct{}, 1)
	nodes[1].Subscribe(func(broker.Update) { got <- struct{}{} })
	u := update(b, "job-1", 1)
	b.SetBytes(int64(len(u.Data)))
	for b.Loop() {
		u.Snapshot.Seq++
		if err := nodes[0].Publish(b.Context(), u); err != nil {
			b.Fatal(err)
		}
		<-got
	}
}

// BenchmarkPublishThroughput publishes from many goroutines on one node and
// waits until the other has received everything.
func BenchmarkPublishThroughput(b *testing.B) {
	nodes := sharedNodes(b, 2)
	var received atomic.Int64
	nodes[1].Subscribe(func(broker.Update) { received.Add(1) })
	u := update(b, "job-1", 1)
	b.SetBytes(int64(len(u.Data)))
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := nodes[0].Publish(b.Context(), u); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if err := testsvc.WaitFor(30*time.Second, func() error {
		if received.Load() < int64(b.N) {
			return testsvc.ErrNotYet
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
}
