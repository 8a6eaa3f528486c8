package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/testsvc"
)

// demoJobs creates, in project demo, four jobs it finishes and one it
// leaves running, and returns them at their last snapshots.
func demoJobs(t *testing.T, c client) []progress.Snapshot {
	t.Helper()
	var out []progress.Snapshot
	for i, st := range []string{"succeeded", "failed", "canceled", "succeeded", ""} {
		s := create(t, c, `{"project":"demo"}`)
		s = report(t, c, s.JobID, fmt.Sprintf(`{"progress":0.%d}`, i+1))
		if st != "" {
			s = report(t, c, s.JobID, fmt.Sprintf(`{"state":%q}`, st))
		}
		out = append(out, s)
	}
	return out
}

// expectReplay subscribes to channel on base and waits until it has been
// sent every job of want at its state.
func expectReplay(t *testing.T, base, channel string, want []progress.Snapshot) {
	t.Helper()
	ws := dialWS(t, base, channel)
	if err := testsvc.WaitFor(20*time.Second, func() error {
		for _, w := range want {
			got, ended, err := ws.last(w.JobID)
			if err != nil || ended {
				return fmt.Errorf("connection: ended %v, %v", ended, err)
			}
			if got.State != w.State {
				return fmt.Errorf("%s: job %s replayed as %q, want %q", channel, w.JobID, got.State, w.State)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestSubscribeReplaysAfterRestart: a node restarted on the same data dir
// starts with an empty memory snapshot store, and a subscriber to the
// project or the owner is still sent the finished jobs the list endpoint
// shows, and the running one (SPEC.md: "the active ones and the most
// recently finished").
func TestSubscribeReplaysAfterRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := startNode(t, dir, nil)
	want := demoJobs(t, client{t: t, base: n.URL()})
	stopNode(t, n)

	n2 := startNode(t, dir, nil)
	var list struct{ Jobs []progress.Snapshot }
	client{t: t, base: n2.URL()}.do("GET", "/api/v1/jobs?project=demo", nil).decode(t, &list)
	if len(list.Jobs) != len(want) {
		t.Fatalf("list after restart: %d jobs, want %d", len(list.Jobs), len(want))
	}
	expectReplay(t, n2.URL(), "project:demo", want)
	expectReplay(t, n2.URL(), "user:local", want)
}

// TestSubscribeReplaysAfterRedisFlush: with the shared Redis snapshot
// store emptied under a running node, a subscriber is still sent the
// project's finished jobs, from PostgreSQL.
func TestSubscribeReplaysAfterRedisFlush(t *testing.T) {
	t.Parallel()
	var redisURL, prefix string
	shared := scaleOut(t)
	n := startNode(t, "", func(c *Config) {
		shared(c)
		redisURL, prefix = c.Redis, c.RedisPrefix
	})
	want := demoJobs(t, client{t: t, base: n.URL()})
	if err := testsvc.DeleteKeys(context.Background(), redisURL, prefix); err != nil {
		t.Fatal(err)
	}
	finished := want[:len(want)-1]
	expectReplay(t, n.URL(), "project:demo", finished)
	expectReplay(t, n.URL(), "user:local", finished)
}

// TestSubscribeReplaysAfterRedisRestart: Redis restarted empty under a
// running node. Once the node is connected again it loads the unfinished
// jobs back, and a subscriber is sent them with the finished ones.
func TestSubscribeReplaysAfterRedisRestart(t *testing.T) {
	rs := testsvc.StartRedis(t)
	db := testsvc.PostgresSchema(t)
	n := startNode(t, "", func(c *Config) { c.DB, c.Redis, c.RedisPrefix = db, rs.URL(), "treplay:" })
	want := demoJobs(t, client{t: t, base: n.URL()})
	rs.Stop()
	rs.Start()
	expectReplay(t, n.URL(), "project:demo", want)
	expectReplay(t, n.URL(), "user:local", want)
}
