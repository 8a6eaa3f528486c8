package node

import (
	"strings"
	"testing"
	"time"
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
		{"--allowed-origins", func(c *Config) { c.AllowedOrigins = []string{"not an origin"} }},
		{"--flush-interval", func(c *Config) { c.FlushInterval = 0 }},
		{"--min-write-interval", func(c *Config) { c.MinWriteInterval = 2 * time.Second }},
		{"--min-write-interval", func(c *Config) { c.MinWriteInterval = -time.Millisecond }},
		{"--kill-grace", func(c *Config) { c.KillGrace = 0 }},
		{"--node-timeout", func(c *Config) { c.NodeTimeout = 500 * time.Millisecond }},
		{"--max-subscriptions", func(c *Config) { c.MaxSubscriptions = 0 }},
		{"--workers", func(c *Config) { c.Workers = -1 }},
		{"--auth-secret", func(c *Config) { c.AuthSecret = "x" }},
		{"openssl rand -hex 32", func(c *Config) { c.AuthSecret = "fifteen-bytes!!" }},
	} {
		c := Defaults()
		tc.set(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%s: Validate() = %v, want an error naming %s", tc.flag, err, tc.flag)
		}
	}
	ok := Defaults()
	ok.MinWriteInterval = 16 * time.Millisecond
	ok.AuthSecret = "sixteen-bytes-ok"
	if err := ok.Validate(); err != nil {
		t.Errorf("--min-write-interval 16ms, a 16-byte secret: refused: %v", err)
	}
}
