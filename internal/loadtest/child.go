package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ServerOptions says how to start a server as a child process.
type ServerOptions struct {
	// Executable is the progressd binary (bench passes os.Executable()).
	Executable string
	// MaxConnsPerUser is passed as --max-conns-per-user. The limit does
	// not apply in single-user mode, which the child runs in; it is set
	// anyway so a later change there cannot silently cap the run.
	MaxConnsPerUser int
	// Args are more `serve` flags, e.g. "--log-level=debug".
	Args []string
	// Env is added to the child's environment. Every PROGRESSD_* variable
	// of this process is removed first: serve reads its flags from them,
	// and PROGRESSD_DB or PROGRESSD_AUTH_SECRET must not turn the
	// throwaway server into one on the user's real data.
	Env []string
	// Output, if set, also receives everything the server prints.
	Output io.Writer
	// ReadyTimeout bounds the start; 0 means 30 s.
	ReadyTimeout time.Duration
}

// ServerProcess is a `progressd serve` started by StartServer on a free
// loopback port with its data in a fresh temporary directory.
type ServerProcess struct {
	URL string
	PID int

	cmd     *exec.Cmd
	dir     string
	out     *tailBuffer
	exited  chan struct{} // closed when the process has exited
	waitErr error         // valid once exited is closed

	stopOnce sync.Once
	stopErr  error
}

// StartServer starts `<Executable> serve --addr 127.0.0.1:<free port>
// --data-dir <temp dir>` and waits until it answers /readyz. If the port
// was taken in between, it tries another.
func StartServer(ctx context.Context, o ServerOptions) (*ServerProcess, error) {
	if o.Executable == "" {
		return nil, errors.New("loadtest: ServerOptions.Executable is empty")
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 30 * time.Second
	}
	var err error
	for range 3 {
		var p *ServerProcess
		if p, err = startServerOnce(ctx, o); err == nil {
			return p, nil
		}
		if !errors.Is(err, errPortTaken) {
			return nil, err
		}
	}
	return nil, err
}

var errPortTaken = errors.New("port taken")

func startServerOnce(ctx context.Context, o ServerOptions) (*ServerProcess, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "progressd-bench-*")
	if err != nil {
		return nil, fmt.Errorf("temporary data directory: %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{"serve", "--addr", addr, "--data-dir", dir, "--log-level", "warn"}
	if o.MaxConnsPerUser > 0 {
		args = append(args, "--max-conns-per-user", strconv.Itoa(o.MaxConnsPerUser))
	}
	args = append(args, o.Args...)
	p := &ServerProcess{
		URL:    "http://" + addr,
		dir:    dir,
		out:    &tailBuffer{max: 16 << 10},
		exited: make(chan struct{}),
	}
	p.cmd = exec.Command(o.Executable, args...)
	p.cmd.Env = append(childEnv(os.Environ()), o.Env...)
	var out io.Writer = p.out
	if o.Output != nil {
		out = io.MultiWriter(p.out, o.Output)
	}
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", o.Executable, err)
	}
	p.PID = p.cmd.Process.Pid
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitReady(ctx, o.ReadyTimeout); err != nil {
		stopErr := p.Stop(context.Background())
		if strings.Contains(p.out.String(), "address already in use") {
			return nil, fmt.Errorf("%w: %v", errPortTaken, err)
		}
		return nil, errors.Join(err, stopErr)
	}
	return p, nil
}

// waitReady polls /readyz until it answers 200.
func (p *ServerProcess) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/readyz", nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("the server exited while starting (%v); the end of its output:\n%s", p.waitErr, p.out.lastLines(20))
		case <-ctx.Done():
			return fmt.Errorf("the server did not become ready on %s within %v; the end of its output:\n%s", p.URL, timeout, p.out.lastLines(20))
		case <-tick.C:
		}
	}
}

// Exited reports whether the server process has ended (without Stop, it
// crashed or was killed).
func (p *ServerProcess) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, waits for the exit (killing the process if ctx ends
// first) and removes the data directory. It is safe to call more than
// once; an error says the server did not exit cleanly.
func (p *ServerProcess) Stop(ctx context.Context) error {
	p.stopOnce.Do(func() {
		defer os.RemoveAll(p.dir)
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-ctx.Done():
			_ = p.cmd.Process.Kill()
			<-p.exited
			p.stopErr = fmt.Errorf("the server did not stop in time after SIGTERM and was killed: %w", ctx.Err())
			return
		}
		if p.waitErr != nil {
			p.stopErr = fmt.Errorf("the server exited with %v; the end of its output:\n%s", p.waitErr, p.out.lastLines(20))
		}
	})
	return p.stopErr
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before the server does; StartServer then tries again.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// childEnv is env without PROGRESSD_* variables.
func childEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PROGRESSD_") {
			out = append(out, kv)
		}
	}
	return out
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.b))
}

// lastLines is the last n lines, each cut to 300 bytes: enough for an
// error message, not a whole goroutine dump.
func (t *tailBuffer) lastLines(n int) string {
	lines := strings.Split(t.String(), "\n")
	lines = lines[max(len(lines)-n, 0):]
	for i, l := range lines {
		if len(l) > 300 {
			lines[i] = l[:300] + "…"
		}
	}
	return strings.Join(lines, "\n")
}
