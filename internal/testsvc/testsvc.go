// Package testsvc gives tests the external services they run against — the
// PostgreSQL and Redis of the machine, or a redis-server of their own — and
// decides what happens when one is missing: the test is skipped, unless
// PROGRESSD_REQUIRE_SERVICES=1 (CI), where it fails.
//
// Every test gets its own namespace on the shared services — a fresh
// PostgreSQL schema, a unique Redis key prefix — and its cleanup removes it,
// so tests run in parallel and repeated runs start clean.
//
// Only loopback addresses (127.0.0.0/8, ::1, localhost) are accepted: a test
// must never reach, let alone write to, a server on another machine.
//
// All functions are safe for concurrent use by parallel tests.
package testsvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment variables that point tests at services.
const (
	// EnvRequire set to 1 makes a missing service a test failure.
	EnvRequire = "PROGRESSD_REQUIRE_SERVICES"
	// EnvPostgres is the URL of the PostgreSQL database tests use.
	EnvPostgres = "PROGRESSD_TEST_POSTGRES"
	// EnvRedis is the URL of the Redis server tests use.
	EnvRedis = "PROGRESSD_REDIS_URL"
)

// Defaults when the environment does not say otherwise.
const (
	DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	DefaultRedis    = "redis://127.0.0.1:6379/0"
)

// probeTimeout bounds the one check per process of whether a service answers.
const probeTimeout = 3 * time.Second

// Required reports whether a missing service must fail the test.
func Required() bool { return os.Getenv(EnvRequire) == "1" }

// Unavailable ends t because service cannot be used: a skip, or a failure
// when services are required.
func Unavailable(t testing.TB, service string, err error) {
	t.Helper()
	if Required() {
		t.Fatalf("%s is required (%s=1) but unavailable: %v", service, EnvRequire, err)
	}
	t.Skipf("%s unavailable, skipping (set %s=1 to make this a failure): %v", service, EnvRequire, err)
}

// probe remembers, per service URL, whether the service answered, so a
// suite of a hundred tests waits for a missing server once, not a hundred
// times.
var probes sync.Map // url → *probeResult

type probeResult struct {
	once sync.Once
	err  error
}

func probeOnce(rawURL string, check func(ctx context.Context) error) error {
	v, _ := probes.LoadOrStore(rawURL, &probeResult{})
	p := v.(*probeResult)
	p.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		p.err = check(ctx)
	})
	return p.err
}

// CheckLoopback returns an error unless rawURL names a loopback host.
func CheckLoopback(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", rawURL, err)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s points at %q: tests only use services on a loopback address (127.0.0.0/8, ::1, localhost)", redact(u), host)
}

// redact returns u without its password, for messages.
func redact(u *url.URL) string {
	if _, ok := u.User.Password(); ok {
		c := *u
		c.User = url.UserPassword(u.User.Username(), "xxxxx")
		return c.String()
	}
	return u.String()
}

// serviceURL returns the URL in env (or def), failing t if it is not on a
// loopback address.
func serviceURL(t testing.TB, env, def string) string {
	t.Helper()
	raw := os.Getenv(env)
	if raw == "" {
		raw = def
	}
	if err := CheckLoopback(raw); err != nil {
		t.Fatalf("%s: %v", env, err)
	}
	return raw
}

// UniqueName returns prefix followed by 12 random hex digits: a name no
// other test run uses.
func UniqueName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// withQuery returns rawURL with the query parameter key set to value.
func withQuery(rawURL, key, value string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// sanitize keeps what may appear unquoted in an SQL identifier or a key.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			return r
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return '_'
	}, s)
}
