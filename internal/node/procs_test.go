package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/testsvc"
)

// The progressd binary, built once for the tests that run real processes.
var bin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func progressdBinary(t *testing.T) string {
	t.Helper()
	bin.once.Do(func() {
		if bin.dir, bin.err = os.MkdirTemp("", "progressd-node-test-"); bin.err != nil {
			return
		}
		bin.path = filepath.Join(bin.dir, "progressd")
		out, err := exec.Command("go", "build", "-o", bin.path, "github.com/progressd/progressd/cmd/progressd").CombinedOutput()
		if err != nil {
			bin.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if bin.err != nil {
		t.Fatal(bin.err)
	}
	return bin.path
}

func removeBinary() {
	if bin.dir != "" {
		_ = os.RemoveAll(bin.dir)
	}
}

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is a `progressd serve` process.
type proc struct {
	cmd    *exec.Cmd
	addr   string
	out    *lockedBuffer
	exited chan struct{}
}

func (p *proc) url() string { return "http://" + p.addr }

// startProc runs `progressd serve` on a free loopback port with its own
// data directory and waits until it is ready. It is stopped (SIGTERM) at
// the end of the test unless it was killed.
func startProc(t *testing.T, args ...string) *proc {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := &proc{addr: addr, out: &lockedBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(progressdBinary(t), append([]string{"serve", "--addr", addr, "--data-dir", t.TempDir(),
		"--flush-interval", "50ms", "--log-level", "info", "--node-timeout", "8s"}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			t.Errorf("node %s did not stop after SIGTERM", addr)
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("log of node %s:\n%s", addr, p.out)
		}
	})
	if err := testsvc.WaitFor(30*time.Second, func() error {
		select {
		case <-p.exited:
			return fmt.Errorf("node %s exited: %s", addr, p.out)
		default:
		}
		resp, err := http.Get(p.url() + "/readyz")
		if err != nil {
			return testsvc.ErrNotYet
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return testsvc.ErrNotYet
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

// kill ends the process with SIGKILL.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

// wsClient is a WebSocket subscriber that collects the snapshots of every
// job it is sent, in order.
type wsClient struct {
	conn   *websocket.Conn
	mu     sync.Mutex
	snaps  map[string][]progress.Snapshot
	closed chan struct{}
	err    error
}

func dialWS(t *testing.T, base, channel string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+base[len("http"):]+"/ws", nil)
	if err != nil {
		t.Fatalf("dial %s: %v", base, err)
	}
	conn.SetReadLimit(1 << 20)
	c := &wsClient{conn: conn, snaps: map[string][]progress.Snapshot{}, closed: make(chan struct{})}
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","id":1,"channel":"`+channel+`"}`)); err != nil {
		t.Fatal(err)
	}
	go c.read()
	t.Cleanup(func() { c.close() })
	return c
}

func (c *wsClient) read() {
	defer close(c.closed)
	for {
		_, data, err := c.conn.Read(context.Background())
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		var f struct {
			Type  string            `json:"type"`
			Job   progress.Snapshot `json:"job"`
			Error json.RawMessage   `json:"error"`
		}
		if json.Unmarshal(data, &f) != nil || f.Type != "update" {
			if f.Error != nil {
				c.mu.Lock()
				c.err = fmt.Errorf("reply: %s", data)
				c.mu.Unlock()
			}
			continue
		}
		c.mu.Lock()
		c.snaps[f.Job.JobID] = append(c.snaps[f.Job.JobID], f.Job)
		c.mu.Unlock()
	}
}

func (c *wsClient) close() {
	_ = c.conn.Close(websocket.StatusNormalClosure, "")
	<-c.closed
}

// first returns the first snapshot of job id received.
func (c *wsClient) first(id string) progress.Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.snaps[id]; len(s) > 0 {
		return s[0]
	}
	return progress.Snapshot{}
}

// last returns the latest snapshot of job id, and whether the connection
// has ended.
func (c *wsClient) last(id string) (progress.Snapshot, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ended := false
	select {
	case <-c.closed:
		ended = true
	default:
	}
	s := c.snaps[id]
	if len(s) == 0 {
		return progress.Snapshot{}, ended, c.err
	}
	return s[len(s)-1], ended, c.err
}

// checkOrder fails unless every job's snapshots came in strictly
// increasing seq order.
func (c *wsClient) checkOrder(t *testing.T, name string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, snaps := range c.snaps {
		for i := 1; i < len(snaps); i++ {
			if snaps[i].Seq <= snaps[i-1].Seq {
				t.Errorf("%s: job %s: seq %d after %d", name, id, snaps[i].Seq, snaps[i-1].Seq)
			}
		}
	}
}
