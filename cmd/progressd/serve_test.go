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

	"github.com/progressd/progressd/internal/testsvc"
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
	testsvc.Eventually(t, 30*time.Second, "the server at "+base+" to answer /healthz", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
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
	if err := waitExit(t, cmd); err == nil || !strings.Contains(stderr.String(), "--auth-secret") {
		t.Fatalf("serve on 0.0.0.0 without a secret: %v\n%s", err, stderr)
	}
}

// waitExit waits for a serve process that must refuse to start.
func waitExit(t *testing.T, cmd *exec.Cmd) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("serve kept running")
		return nil
	}
}

// TestServeRefusesShortSecret: a secret under 16 bytes stops the server
// at start, with a message saying how to make one; from the environment
// too.
func TestServeRefusesShortSecret(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		args []string
	}{
		{args: []string{"--auth-secret", "x"}},
		{env: []string{"PROGRESSD_AUTH_SECRET=fifteen-bytes!!"}},
	} {
		cmd, stderr := serveProcess(t, tc.env, append([]string{"--addr", freeAddr(t), "--data-dir", t.TempDir()}, tc.args...)...)
		if err := waitExit(t, cmd); err == nil || !strings.Contains(stderr.String(), "at least 16") || !strings.Contains(stderr.String(), "openssl rand -hex 32") {
			t.Errorf("serve %v %v with a short secret: %v\n%s", tc.env, tc.args, err, stderr)
		}
	}
	if _, errOut, code := run(t, "token", "--auth-secret", "short", "--sub", "alice"); code == 0 || !strings.Contains(errOut, "openssl rand -hex 32") {
		t.Errorf("token with a short secret: exit %d, %s", code, errOut)
	}
}

// TestServeAuthSecretFile: --auth-secret-file (or PROGRESSD_AUTH_SECRET_FILE)
// takes the secret from a file, trailing newline and all; set together
// with --auth-secret, or empty, it is refused; `token` reads it too.
func TestServeAuthSecretFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	serveProcess(t, []string{"PROGRESSD_AUTH_SECRET_FILE=" + file}, "--addr", addr, "--data-dir", filepath.Join(dir, "data"))
	waitHealthy(t, "http://"+addr)
	tok, errOut, code := run(t, "token", "--auth-secret-file", file, "--sub", "alice")
	if code != 0 {
		t.Fatalf("token --auth-secret-file: %s", errOut)
	}
	for _, tc := range []struct {
		token string
		want  int
	}{{"", http.StatusUnauthorized}, {strings.TrimSpace(tok), http.StatusOK}} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/jobs", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("token %q: %d, want %d (the secret is not the file's)", tc.token, resp.StatusCode, tc.want)
		}
	}

	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--auth-secret-file", file, "--auth-secret", "0123456789abcdef-other"}, "both set"},
		{[]string{"--auth-secret-file", empty}, "is empty"},
		{[]string{"--auth-secret-file", filepath.Join(dir, "missing")}, "no such file"},
	} {
		cmd, stderr := serveProcess(t, nil, append([]string{"--addr", freeAddr(t), "--data-dir", t.TempDir()}, tc.args...)...)
		if err := waitExit(t, cmd); err == nil || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("serve %v: %v\n%s, want it to say %q", tc.args, err, stderr, tc.want)
		}
	}
}

// TestServeRefusesBadWebhooks: a webhook URL that is not http(s), a URL
// without a secret and a secret shorter than 16 bytes (from the flag, the
// environment or a file) each stop serve before it listens, saying why.
func TestServeRefusesBadWebhooks(t *testing.T) {
	t.Parallel()
	short := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(short, []byte("too-short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const good = "0123456789abcdef0123"
	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"--webhook-url", "ftp://example.com/in", "--webhook-secret", good}, `--webhook-url "ftp://example.com/in": only http:// and https:// URLs are accepted`},
		{[]string{"PROGRESSD_WEBHOOK_URL=https://example.com/a,file:///etc/passwd", "PROGRESSD_WEBHOOK_SECRET=" + good}, nil, `"file:///etc/passwd": only http:// and https://`},
		{nil, []string{"--webhook-url", "https://example.com/in"}, "--webhook-url needs --webhook-secret"},
		{nil, []string{"--webhook-url", "https://example.com/in", "--webhook-secret", "fifteen-bytes!!"}, "--webhook-secret is 15 bytes; it must be at least 16"},
		{nil, []string{"--webhook-url", "https://example.com/in", "--webhook-secret-file", short}, "--webhook-secret is 9 bytes"},
	} {
		cmd, stderr := serveProcess(t, tc.env, append([]string{"--addr", freeAddr(t), "--data-dir", t.TempDir()}, tc.args...)...)
		if err := waitExit(t, cmd); err == nil || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("serve %v %v: %v\n%s, want it to say %q", tc.env, tc.args, err, stderr, tc.want)
		}
	}
}
