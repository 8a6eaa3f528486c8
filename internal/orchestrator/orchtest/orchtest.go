// Package orchtest starts a progressd server made of the real pieces — the
// SQLite store behind its write-behind, memory snapshots, the local
// broker, the jobs service, the orchestrator with its River queue, the
// HTTP API and the WebSocket gateway — on a loopback port, for the tests
// of the Go client and the CLI. It wires them the way the node does, in
// fewer lines: a second wiring that can drift from the node's (it has no
// SSE, metrics or readiness), kept until those tests start a node instead.
package orchtest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/api"
	"github.com/progressd/progressd/internal/auth"
	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/gateway"
	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/orchestrator"
	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/snapshot"
	"github.com/progressd/progressd/internal/store"
	"github.com/progressd/progressd/internal/store/sqlite"
)

// Options configure a test server. Zero values are fine.
type Options struct {
	Dir        string // data directory; "" is a fresh temp dir
	Pipelines  string // pipelines YAML; "" runs the built-in demo
	Workers    int
	KillGrace  time.Duration // default 1s
	AuthSecret string
	// NoWebSocket leaves /ws out, like a node whose gateway is not wired.
	NoWebSocket bool
	Log         *slog.Logger // default: discarded
}

// Server is a running test server.
type Server struct {
	URL  string
	Dir  string
	Jobs *jobs.Service
	Orch *orchestrator.Orchestrator
	// Broker carries every snapshot the server publishes.
	Broker *broker.Local

	http  *httptest.Server
	gw    *gateway.Gateway
	wb    *store.WriteBehind
	db    *sqlite.Store
	snaps *snapshot.Memory
	once  sync.Once
}

// Start starts a server and stops it when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	s, err := New(o, t.TempDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// New starts a server; tempDir supplies a data directory if o.Dir is "".
// Call Close to stop it.
func New(o Options, tempDir func() string) (_ *Server, err error) {
	if o.Dir == "" {
		o.Dir = tempDir()
	}
	if o.KillGrace == 0 {
		o.KillGrace = time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx := context.Background()
	s := &Server{Dir: o.Dir}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.db, err = sqlite.Open(ctx, filepath.Join(o.Dir, "progressd.db")); err != nil {
		return nil, err
	}
	s.wb = store.NewWriteBehind(s.db, 50*time.Millisecond, o.Log)
	s.snaps = snapshot.NewMemory(snapshot.MemoryOptions{})
	s.Broker = broker.NewLocal()
	s.Jobs = jobs.New(jobs.Config{Snapshots: s.snaps, DB: s.wb, Broker: s.Broker, Log: o.Log})
	if err := s.Jobs.Warm(ctx); err != nil {
		return nil, err
	}
	// The listener comes first, as in the node: stages are told its URL.
	mux := http.NewServeMux()
	s.http = httptest.NewUnstartedServer(mux)
	s.URL = "http://" + s.http.Listener.Addr().String()
	cfg := orchestrator.Config{
		Jobs: s.Jobs, DataDir: o.Dir, Workers: o.Workers, KillGrace: o.KillGrace,
		RetryBackoff: 20 * time.Millisecond, PollInterval: 50 * time.Millisecond, Log: o.Log,
		ServerURL: s.URL, AuthSecret: o.AuthSecret,
	}
	if o.Pipelines != "" {
		cfg.PipelinesFile = filepath.Join(o.Dir, "pipelines.yaml")
		if err := os.WriteFile(cfg.PipelinesFile, []byte(o.Pipelines), 0o600); err != nil {
			return nil, err
		}
	}
	if s.Orch, err = orchestrator.New(cfg); err != nil {
		return nil, err
	}
	s.Jobs.SetRunner(s.Orch.Runner())
	if err := s.Orch.Start(ctx); err != nil {
		return nil, err
	}

	authn := auth.New(o.AuthSecret)
	api.New(mux, api.Config{Jobs: s.Jobs, Auth: authn, Version: "test", Log: o.Log})
	if s.gw, err = gateway.New(gateway.Config{Broker: s.Broker, Jobs: s.Jobs, Auth: authn, Log: o.Log}); err != nil {
		return nil, err
	}
	if !o.NoWebSocket {
		mux.HandleFunc("GET /ws", s.gw.ServeWS)
	}
	s.http.Start()
	return s, nil
}

// Close stops the server the way a node shuts down: connections first,
// then running jobs (handed back), then the stores. Safe to call twice.
func (s *Server) Close() {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if s.gw != nil {
			_ = s.gw.Shutdown(ctx)
		}
		if s.http != nil {
			s.http.Close()
		}
		if s.Orch != nil {
			_ = s.Orch.Stop(ctx)
		}
		if s.Broker != nil {
			_ = s.Broker.Close()
		}
		if s.wb != nil {
			_ = s.wb.Close(ctx)
		}
		if s.db != nil {
			_ = s.db.Close()
		}
		if s.snaps != nil {
			_ = s.snaps.Close()
		}
	})
}

// Create makes a pipeline job owned by user "local".
func (s *Server) Create(t testing.TB, project, pipeline string, params map[string]string) progress.Snapshot {
	t.Helper()
	snap, err := s.Jobs.Create(context.Background(), "local", jobs.CreateRequest{Project: project, Pipeline: pipeline, Params: params})
	if err != nil {
		t.Fatalf("create %s job: %v", pipeline, err)
	}
	return snap
}

// Wait polls job id until cond holds, failing the test after timeout.
func (s *Server) Wait(t testing.TB, id string, timeout time.Duration, what string, cond func(progress.Snapshot) bool) progress.Snapshot {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last progress.Snapshot
	for {
		snap, err := s.Jobs.Get(context.Background(), id)
		if err != nil && !errors.Is(err, jobs.ErrNotFound) {
			t.Fatalf("get job %s: %v", id, err)
		}
		last = snap
		if err == nil && cond(snap) {
			return snap
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: not %s after %s; last snapshot: state=%s progress=%v stage=%q message=%q error=%v",
				id, what, timeout, last.State, last.Progress, last.Stage, last.Message, deref(last.Error))
		}
		time.Sleep(5 * time.Millisecond) // poll interval, bounded by the deadline above
	}
}

// WaitTerminal waits for job id to finish.
func (s *Server) WaitTerminal(t testing.TB, id string, timeout time.Duration) progress.Snapshot {
	t.Helper()
	return s.Wait(t, id, timeout, "finished", func(s progress.Snapshot) bool { return s.State.Terminal() })
}

func deref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

// Recorder keeps every snapshot of one job the server publishes.
type Recorder struct {
	mu    sync.Mutex
	snaps []progress.Snapshot
	stop  func()
}

// Record starts recording job id's snapshots; it stops when the test ends.
func (s *Server) Record(t testing.TB, id string) *Recorder {
	r := &Recorder{}
	r.stop = s.Broker.Subscribe(func(u broker.Update) {
		if u.Snapshot.JobID == id {
			r.mu.Lock()
			r.snaps = append(r.snaps, u.Snapshot.Clone())
			r.mu.Unlock()
		}
	})
	t.Cleanup(r.stop)
	return r
}

// Snapshots returns what was recorded so far, in publish order.
func (r *Recorder) Snapshots() []progress.Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]progress.Snapshot(nil), r.snaps...)
}

// Messages returns the distinct messages recorded, in order.
func (r *Recorder) Messages() []string {
	var out []string
	for _, s := range r.Snapshots() {
		if s.Message != "" && (len(out) == 0 || out[len(out)-1] != s.Message) {
			out = append(out, s.Message)
		}
	}
	return out
}
