package testsvc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisURL returns the URL of the shared test Redis (EnvRedis, or
// DefaultRedis), or ends t if it does not answer.
func RedisURL(t testing.TB) string {
	t.Helper()
	raw := serviceURL(t, EnvRedis, DefaultRedis)
	err := probeOnce(raw, func(ctx context.Context) error {
		opt, err := redis.ParseURL(raw)
		if err != nil {
			return err
		}
		c := redis.NewClient(opt)
		defer c.Close()
		return c.Ping(ctx).Err()
	})
	if err != nil {
		Unavailable(t, "Redis at "+raw, err)
	}
	return raw
}

// RedisClient returns a client of the Redis at rawURL, closed when t ends.
func RedisClient(t testing.TB, rawURL string) *redis.Client {
	t.Helper()
	if err := CheckLoopback(rawURL); err != nil {
		t.Fatal(err)
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		t.Fatalf("redis URL %s: %v", rawURL, err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// RedisPrefix returns a key prefix no other test run uses, and deletes
// every key under it from the Redis at rawURL when t ends.
func RedisPrefix(t testing.TB, rawURL string) string {
	t.Helper()
	prefix := UniqueName("progressd-test:"+sanitize(shortName(t.Name()))+":") + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := DeleteKeys(ctx, rawURL, prefix); err != nil {
			t.Errorf("delete test keys %s*: %v", prefix, err)
		}
	})
	return prefix
}

// DeleteKeys deletes every key that starts with prefix.
func DeleteKeys(ctx context.Context, rawURL, prefix string) error {
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return err
	}
	c := redis.NewClient(opt)
	defer c.Close()
	iter := c.Scan(ctx, 0, escapeGlob(prefix)+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			if err := c.Unlink(ctx, batch...).Err(); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return c.Unlink(ctx, batch...).Err()
	}
	return nil
}

// escapeGlob escapes the characters SCAN MATCH treats as a pattern.
func escapeGlob(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return string(b)
}

// RedisServer is a redis-server of a test's own, on a free loopback port,
// that the test may stop and start again (on the same port) to see how
// clients live through a restart. It keeps nothing on disk.
type RedisServer struct {
	t    testing.TB
	port int

	mu  sync.Mutex
	cmd *exec.Cmd
	out *bytes.Buffer
}

// StartRedis starts a redis-server for t, stopped when t ends. It ends t
// (skip or failure, see Unavailable) when redis-server is not installed.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		Unavailable(t, "redis-server", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	s := &RedisServer{t: t, port: port}
	t.Cleanup(s.Stop)
	s.Start()
	return s
}

// URL is the server's redis:// URL.
func (s *RedisServer) URL() string { return "redis://" + s.Addr() + "/0" }

// Addr is the server's host:port.
func (s *RedisServer) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Start starts the server (again) and waits until it answers PING.
func (s *RedisServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		s.t.Fatal("RedisServer.Start: already running")
	}
	out := &bytes.Buffer{}
	cmd := exec.Command("redis-server",
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--dir", s.t.TempDir(), "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.cmd, s.out = cmd, out
	s.mu.Unlock()

	opt := &redis.Options{Addr: s.Addr(), MaxRetries: -1}
	c := redis.NewClient(opt)
	defer c.Close()
	err := WaitFor(10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.Ping(ctx).Err()
	})
	if err != nil {
		s.mu.Lock()
		log := out.String()
		s.mu.Unlock()
		s.t.Fatalf("redis-server on %s did not answer: %v\n%s", s.Addr(), err, log)
	}
}

// Stop kills the server and waits for it to exit. Stopping a stopped
// server does nothing.
func (s *RedisServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// WaitFor calls check until it returns nil or timeout passes, and returns
// the last error then. It polls every few milliseconds: for a condition
// that becomes true by itself, without a fixed sleep that is either too
// short on a slow machine or wasted on a fast one.
func WaitFor(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still failing after %v: %w", timeout, err)
		}
		<-time.After(wait)
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// Eventually polls cond until it holds, and fails t naming what it waited
// for when timeout passes first: the one way the tests wait for something
// to happen (never a sleep).
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	err := WaitFor(timeout, func() error {
		if cond() {
			return nil
		}
		return ErrNotYet
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// ErrNotYet is a convenient error for WaitFor checks that have no other.
var ErrNotYet = errors.New("not yet")
