package node

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/snapshot"
	"github.com/progressd/progressd/internal/testsvc"
)

// TestValidateNamesTheFlag: each bad setting is refused with an error
// that names its flag; the defaults pass.
func TestValidateNamesTheFlag(t *testing.T) {
	t.Parallel()
	def := Defaults()
	if err := def.Validate(); err != nil {
		t.Fatalf("the defaults do not validate: %v", err)
	}
	for _, tc := range []struct {
		flag string
		set  func(*Config)
	}{
		{"--addr", func(c *Config) { c.Addr = "" }},
		{"--db", func(c *Config) { c.DB = "postgres://%zz" }},
		{"--redis", func(c *Config) { c.Redis = "http://nope" }},
		{"--redis-prefix", func(c *Config) { c.Redis, c.RedisPrefix = "redis://127.0.0.1:6379/0", "" }},
		{"--snapshots", func(c *Config) { c.Snapshots = "disk" }},
		{"--snapshots", func(c *Config) { c.Snapshots = "redis" }}, // without --redis
		{"--broker", func(c *Config) { c.Broker = "nats" }},
		{"--broker", func(c *Config) { c.Broker = "redis" }},
		{"--allowed-origins", func(c *Config) { c.AllowedOrigins = []string{"not an origin"} }},
		{"--flush-interval", func(c *Config) { c.FlushInterval = 0 }},
		{"--min-write-interval", func(c *Config) { c.MinWriteInterval = 2 * time.Second }},
		{"--min-write-interval", func(c *Config) { c.MinWriteInterval = -time.Millisecond }},
		{"--kill-grace", func(c *Config) { c.KillGrace = 0 }},
		{"--abandon-after", func(c *Config) { c.AbandonAfter = -time.Hour }},
		{"--node-timeout", func(c *Config) { c.NodeTimeout = 500 * time.Millisecond }},
		{"--max-subscriptions", func(c *Config) { c.MaxSubscriptions = 0 }},
		{"--workers", func(c *Config) { c.Workers = -1 }},
		{"--auth-secret", func(c *Config) { c.AuthSecret = "x" }},
		{"openssl rand -hex 32", func(c *Config) { c.AuthSecret = "fifteen-bytes!!" }},
		{"only http:// and https://", func(c *Config) { c.WebhookURLs, c.WebhookSecret = []string{"ftp://example.com/x"}, "0123456789abcdef" }},
		{"only http:// and https://", func(c *Config) { c.WebhookURLs, c.WebhookSecret = []string{"example.com/hook"}, "0123456789abcdef" }},
		{"--webhook-url \"http:///x\" has no host", func(c *Config) { c.WebhookURLs, c.WebhookSecret = []string{"http:///x"}, "0123456789abcdef" }},
		{"--webhook-url needs --webhook-secret", func(c *Config) { c.WebhookURLs = []string{"https://example.com/x"} }},
		{"--webhook-secret is 15 bytes; it must be at least 16", func(c *Config) {
			c.WebhookURLs, c.WebhookSecret = []string{"https://example.com/x"}, "fifteen-bytes!!"
		}},
	} {
		c := Defaults()
		tc.set(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%s: Validate() = %v, want an error naming %s", tc.flag, err, tc.flag)
		}
	}
	mixed := Defaults() // snapshots on Redis, updates in process: one node whose snapshots survive it
	mixed.Redis, mixed.Broker = "redis://127.0.0.1:6379/0", BrokerLocal
	if err := mixed.Validate(); err != nil || mixed.SnapshotStore() != "redis" || mixed.BrokerKind() != BrokerLocal {
		t.Errorf("--redis with --broker local: %v, snapshots %s, broker %s", err, mixed.SnapshotStore(), mixed.BrokerKind())
	}
	ok := Defaults()
	ok.MinWriteInterval = 16 * time.Millisecond
	ok.AuthSecret = "sixteen-bytes-ok"
	if err := ok.Validate(); err != nil {
		t.Errorf("--min-write-interval 16ms, a 16-byte secret: refused: %v", err)
	}
}

// TestSnapshotsAndBrokerAreChosenApart: --snapshots and --broker pick the
// two Redis parts one at a time, and /readyz checks what was picked.
func TestSnapshotsAndBrokerAreChosenApart(t *testing.T) {
	t.Parallel()
	url := testsvc.RedisURL(t)
	for _, tc := range []struct {
		snapshots, broker string
		ready             []string
	}{
		{SnapshotsMemory, "redis", []string{"snapshots", "redis_pubsub"}},
		{"redis", BrokerLocal, []string{"redis"}},
	} {
		n := startNode(t, "", func(c *Config) {
			c.Redis, c.RedisPrefix = url, testsvc.RedisPrefix(t, url)
			c.Snapshots, c.Broker = tc.snapshots, tc.broker
		})
		_, memory := n.snaps.(*snapshot.Memory)
		_, local := n.broker.(*broker.Local)
		if memory != (tc.snapshots == SnapshotsMemory) || local != (tc.broker == BrokerLocal) {
			t.Errorf("--snapshots %s --broker %s: got %T and %T", tc.snapshots, tc.broker, n.snaps, n.broker)
		}
		var names []string
		for _, c := range n.ready {
			names = append(names, c.Name)
		}
		for _, want := range tc.ready {
			if !slices.Contains(names, want) {
				t.Errorf("--snapshots %s --broker %s: /readyz checks %v, want %s among them", tc.snapshots, tc.broker, names, want)
			}
		}
	}
}
