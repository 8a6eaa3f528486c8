// Package nodetest starts a progressd node for a test the way `progressd
// serve` does — node.Start, every part the product has (SSE, metrics,
// readiness, origin checks) — on a free loopback port with a temporary
// data directory and short waits, so that the tests of the Go client, the
// CLI and anything else that needs a running server test the wiring users
// run, not a second one.
package nodetest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/broker/brokertest"
	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/node"
	"github.com/progressd/progressd/internal/orchestrator"
	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/testsvc"
)

// Options are what tests usually change. Zero values are fine.
type Options struct {
	Dir        string        // data directory; "" is a fresh temporary one
	Pipelines  string        // pipelines YAML; "" runs the built-in demo
	Workers    int           // pipeline jobs run at once; 0 is the default
	KillGrace  time.Duration // SIGTERM to SIGKILL of a stopped stage; default 1s
	AuthSecret string        // "" is single-user mode
	// NoWebSocket leaves /ws out, like a server without the gateway.
	NoWebSocket bool
	// Config, when not nil, changes anything else before the node starts.
	Config func(*node.Config)
	Log    *slog.Logger // default: discarded
}

// Server is a running node.
type Server struct {
	*node.Node
	URL  string
	Dir  string
	Orch *orchestrator.Orchestrator
}

// Start starts a node and stops it when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	s, err := New(o, t.TempDir)
	if err != nil {
		t.Fatalf("start a node: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// New starts a node; tempDir supplies the data directory if o.Dir is "".
// Call Close to stop it (or let a test's subprocess be killed, to crash it).
func New(o Options, tempDir func() string) (*Server, error) {
	if o.Dir == "" {
		o.Dir = tempDir()
	}
	cfg := node.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = o.Dir
	cfg.AuthSecret = o.AuthSecret
	cfg.NoWebSocket = o.NoWebSocket
	cfg.FlushInterval = 50 * time.Millisecond
	cfg.KillGrace = time.Second
	if o.KillGrace > 0 {
		cfg.KillGrace = o.KillGrace
	}
	if o.Workers > 0 {
		cfg.Workers = o.Workers
	}
	cfg.QueueRetryBackoff = 20 * time.Millisecond
	cfg.QueuePollInterval = 50 * time.Millisecond
	if o.Pipelines != "" {
		cfg.Pipelines = filepath.Join(o.Dir, "pipelines.yaml")
		if err := os.WriteFile(cfg.Pipelines, []byte(o.Pipelines), 0o600); err != nil {
			return nil, err
		}
	}
	if o.Config != nil {
		o.Config(&cfg)
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	n, err := node.Start(context.Background(), cfg, log)
	if err != nil {
		return nil, err
	}
	return &Server{Node: n, URL: n.URL(), Dir: o.Dir, Orch: n.Orchestrator()}, nil
}

// Close shuts the node down as SIGTERM does: connections, then running
// jobs (handed back), then the stores. Safe to call twice.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = s.Shutdown(ctx)
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
	var last progress.Snapshot
	err := testsvc.WaitFor(timeout, func() error {
		snap, err := s.Jobs.Get(context.Background(), id)
		if err != nil {
			return err
		}
		last = snap
		if !cond(snap) {
			return fmt.Errorf("last snapshot: state=%s progress=%v stage=%q message=%q error=%v",
				snap.State, snap.Progress, snap.Stage, snap.Message, deref(snap.Error))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("job %s: not %s: %v", id, what, err)
	}
	return last
}

func deref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

// WaitTerminal waits for job id to finish.
func (s *Server) WaitTerminal(t testing.TB, id string, timeout time.Duration) progress.Snapshot {
	t.Helper()
	return s.Wait(t, id, timeout, "finished", func(s progress.Snapshot) bool { return s.State.Terminal() })
}

// Recorder keeps every snapshot of one job the node publishes.
type Recorder = brokertest.JobRecorder

// Record starts recording job id's snapshots; it stops when the test ends.
func (s *Server) Record(t testing.TB, id string) *Recorder {
	return brokertest.RecordJob(t, s.Broker(), id)
}
