// Package jobstest wires the job path of one node — a SQLite store under
// its write-behind, a snapshot store, a local broker and the jobs.Service
// over them — for the tests of the packages node is built from (jobs,
// gateway, orchestrator), which cannot start a node. It is the one hand
// wiring besides node.Start; tests that need a whole running server use
// node/nodetest.
package jobstest

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/snapshot"
	"github.com/progressd/progressd/internal/store"
	"github.com/progressd/progressd/internal/store/sqlite"
)

// Options change the path. Zero values are fine.
type Options struct {
	// Snapshots is the snapshot store; nil is a new snapshot.Memory.
	Snapshots snapshot.Store
	// FlushInterval is the write-behind's; default 20 ms.
	FlushInterval time.Duration
	// Config, when not nil, changes the service's config before New.
	Config func(*jobs.Config)
}

// Path is a running job path. Everything is closed when the test ends, in
// the node's order: the service, the broker, the write-behind (flushed),
// the stores.
type Path struct {
	Jobs      *jobs.Service
	Broker    *broker.Local
	Snapshots snapshot.Store
	WB        *store.WriteBehind
	DB        store.Store
}

// New wires a path for t.
func New(t testing.TB, o Options) *Path {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "progressd.db"))
	if err != nil {
		t.Fatal(err)
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = 20 * time.Millisecond
	}
	if o.Snapshots == nil {
		o.Snapshots = snapshot.NewMemory(snapshot.MemoryOptions{})
	}
	p := &Path{DB: db, WB: store.NewWriteBehind(db, o.FlushInterval, log), Snapshots: o.Snapshots, Broker: broker.NewLocal()}
	cfg := jobs.Config{Snapshots: p.Snapshots, DB: p.WB, Broker: p.Broker, Log: log}
	if o.Config != nil {
		o.Config(&cfg)
	}
	p.Jobs = jobs.New(cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Jobs.Close()
		_ = p.Broker.Close()
		_ = p.WB.Close(ctx)
		_ = p.DB.Close()
		_ = p.Snapshots.Close()
	})
	return p
}
