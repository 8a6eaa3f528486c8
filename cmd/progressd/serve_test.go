package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// freeAddr returns a loopback address no one listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// serveProcess runs this test binary as `progressd serve` with env.
func serveProcess(t *testing.T, env []string, args ...string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve"}, args...)...)
	cmd.Env = append(append(os.Environ(), asCLI+"=1"), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, &stderr
}

func waitHealthy(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond) // polling a process that is starting
	}
	t.Fatalf("server at %s did not become healthy", base)
}

// TestServeSIGTERM: a WebSocket client gets 1001 going away and the process
// exits 0, well within 15 s. The data dir comes from PROGRESSD_DATA_DIR.
func TestServeSIGTERM(t *testing.T) {
	addr := freeAddr(t)
	dir := filepath.Join(t.TempDir(), "data")
	cmd, stderr := serveProcess(t, []string{"PROGRESSD_DATA_DIR=" + dir}, "--addr", addr)
	waitHealthy(t, "http://"+addr)
	if _, err := os.Stat(filepath.Join(dir, "progressd.db")); err != nil {
		t.Fatalf("PROGRESSD_DATA_DIR was not used: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","id":1,"channel":"project:p"}`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.Read(ctx); err != nil { // the reply
		t.Fatal(err)
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_, _, err = ws.Read(ctx)
	if status := websocket.CloseStatus(err); status != websocket.StatusGoingAway {
		t.Fatalf("after SIGTERM the client read %v (status %d), want 1001 going away", err, status)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("still running 15 s after SIGTERM\n%s", stderr)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
}

// TestServeRefusesOpenAddressWithoutSecret: single-user mode only on
// loopback, and the refusal says what to do.
func TestServeRefusesOpenAddressWithoutSecret(t *testing.T) {
	cmd, stderr := serveProcess(t, nil, "--addr", "0.0.0.0:0", "--data-dir", t.TempDir())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(stderr.String(), "--auth-secret") {
			t.Fatalf("serve on 0.0.0.0 without a secret: %v\n%s", err, stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve on 0.0.0.0 without a secret kept running")
	}
}
