// Package redislogs is the logs.Store that several nodes share: each
// running job's most recent log lines in Redis, numbered atomically so n
// has no gaps whatever node appends.
//
// # Layout
//
// Under a configurable prefix (Options.Prefix, default "progressd:"), per
// job:
//
//	logn:{<id>}  string: the job's newest n
//	log:{<id>}   list: the kept lines, oldest first, each its JSON wire form
//
// One Lua script appends: it reads the counter, pushes each line with its
// n written in, trims the list to Keep and sets both keys' expiry; so the
// structure is bounded and two nodes appending at once get distinct,
// consecutive numbers. Both keys expire TTL after the last append (a job
// silent longer than that is seeded again from the durable store, which
// has every line by then) and DropGrace after the job ends.
//
// The job id is a hash tag, so both keys of a job share a Redis Cluster
// slot. All methods are safe for concurrent use.
package redislogs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/progressd/progressd/internal/logs"
	"github.com/progressd/progressd/internal/progress"
)

// Options configure a Store. Zero values take the defaults.
type Options struct {
	// Prefix starts every key; nodes sharing jobs use the same one.
	// Default "progressd:".
	Prefix string
	// Keep is how many of a job's newest lines are kept. Default
	// progress.DefaultLogLines.
	Keep int
	// TTL is how long a job's lines stay after its last append. Default 48 h.
	TTL time.Duration
	// DropGrace is how long a dropped job's lines can still be read, while
	// other nodes finish writing them behind. Default 1 min.
	DropGrace time.Duration
}

// Store is the Redis implementation of logs.Store.
type Store struct {
	c    redis.UniversalClient
	opts Options
}

var _ logs.Store = (*Store)(nil)

// New returns a Store on client c. The caller closes c after Close.
func New(c redis.UniversalClient, o Options) *Store {
	if o.Prefix == "" {
		o.Prefix = "progressd:"
	}
	if o.Keep <= 0 {
		o.Keep = progress.DefaultLogLines
	}
	if o.TTL <= 0 {
		o.TTL = 48 * time.Hour
	}
	if o.DropGrace <= 0 {
		o.DropGrace = time.Minute
	}
	return &Store{c: c, opts: o}
}

func (s *Store) keys(job string) []string {
	return []string{s.opts.Prefix + "log:{" + job + "}", s.opts.Prefix + "logn:{" + job + "}"}
}

// appendScript: KEYS list, counter; ARGV keep, ttl ms, then each line's
// JSON without its opening brace. Returns the first n given, or -1 when
// the job has no counter (seed it).
var appendScript = redis.NewScript(`
local last = redis.call('GET', KEYS[2])
if not last then return -1 end
last = tonumber(last)
local first = last + 1
for i = 3, #ARGV do
	last = last + 1
	redis.call('RPUSH', KEYS[1], '{"n":' .. string.format('%d', last) .. ',' .. ARGV[i])
end
redis.call('SET', KEYS[2], string.format('%d', last), 'PX', ARGV[2])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[1]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return first
`)

// seedScript: KEYS list, counter; ARGV last, ttl ms, then each line's
// JSON. Creates the ring unless the counter exists.
var seedScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('DEL', KEYS[1])
for i = 3, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// readScript: KEYS list, counter; ARGV after, limit. Returns {last, kept
// count, lines}, or nil when the job has no counter.
var readScript = redis.NewScript(`
local last = redis.call('GET', KEYS[2])
if not last then return false end
local len = redis.call('LLEN', KEYS[1])
local first = tonumber(last) - len + 1
local after = tonumber(ARGV[1])
local start = 0
if after >= first then start = after - first + 1 end
return {last, len, redis.call('LRANGE', KEYS[1], start, start + tonumber(ARGV[2]) - 1)}
`)

// wireLine is a line as stored, without n (the append script writes it).
type wireLine struct {
	T      progress.Time `json:"t"`
	Stream string        `json:"stream"`
	Stage  string        `json:"stage,omitempty"`
	Text   string        `json:"text"`
}

// Append numbers and keeps lines.
func (s *Store) Append(ctx context.Context, job string, lines []progress.LogLine) ([]progress.LogLine, error) {
	args := make([]any, 0, 2+len(lines))
	args = append(args, s.opts.Keep, s.opts.TTL.Milliseconds())
	for _, l := range lines {
		b, err := json.Marshal(wireLine{T: l.T, Stream: l.Stream, Stage: l.Stage, Text: l.Text})
		if err != nil {
			return nil, fmt.Errorf("redislogs: encode a line of job %s: %w", job, err)
		}
		args = append(args, string(b[1:]))
	}
	first, err := appendScript.Run(ctx, s.c, s.keys(job), args...).Int64()
	if err != nil {
		return nil, fmt.Errorf("redislogs: append to job %s: %w", job, err)
	}
	if first < 0 {
		return nil, logs.ErrUnknown
	}
	out := make([]progress.LogLine, len(lines))
	for i, l := range lines {
		l.N = first + int64(i)
		out[i] = l
	}
	return out, nil
}

// Seed creates the job's ring unless it exists.
func (s *Store) Seed(ctx context.Context, job string, lines []progress.LogLine, last int64) error {
	if len(lines) > s.opts.Keep {
		lines = lines[len(lines)-s.opts.Keep:]
	}
	args := make([]any, 0, 2+len(lines))
	args = append(args, strconv.FormatInt(last, 10), s.opts.TTL.Milliseconds())
	for _, l := range lines {
		b, err := json.Marshal(l)
		if err != nil {
			return fmt.Errorf("redislogs: encode a line of job %s: %w", job, err)
		}
		args = append(args, string(b))
	}
	if err := seedScript.Run(ctx, s.c, s.keys(job), args...).Err(); err != nil {
		return fmt.Errorf("redislogs: seed job %s: %w", job, err)
	}
	return nil
}

// Read returns kept lines after after.
func (s *Store) Read(ctx context.Context, job string, after int64, limit int) (progress.LogPage, error) {
	res, err := readScript.Run(ctx, s.c, s.keys(job), max(after, -1), limit).Slice()
	if errors.Is(err, redis.Nil) {
		return progress.LogPage{}, logs.ErrUnknown
	}
	if err != nil {
		return progress.LogPage{}, fmt.Errorf("redislogs: read job %s: %w", job, err)
	}
	if len(res) != 3 {
		return progress.LogPage{}, fmt.Errorf("redislogs: read job %s: unexpected reply %v", job, res)
	}
	lastS, _ := res[0].(string)
	last, err := strconv.ParseInt(lastS, 10, 64)
	if err != nil {
		return progress.LogPage{}, fmt.Errorf("redislogs: read job %s: counter %q: %w", job, lastS, err)
	}
	kept, _ := res[1].(int64)
	raw, _ := res[2].([]any)
	p := progress.LogPage{Last: last, Lines: make([]progress.LogLine, 0, len(raw))}
	if kept > 0 {
		p.First = last - kept + 1
		p.Truncated = after >= 0 && after+1 < p.First
	}
	for _, r := range raw {
		var l progress.LogLine
		str, _ := r.(string)
		if err := json.Unmarshal([]byte(str), &l); err != nil {
			return progress.LogPage{}, fmt.Errorf("redislogs: read job %s: a kept line: %w", job, err)
		}
		p.Lines = append(p.Lines, l)
	}
	return p, nil
}

// Drop lets the job's lines expire after DropGrace.
func (s *Store) Drop(ctx context.Context, job string) error {
	ms := s.opts.DropGrace
	_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range s.keys(job) {
			p.PExpire(ctx, k, ms)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redislogs: drop job %s: %w", job, err)
	}
	return nil
}

// Close does nothing: the caller owns the client.
func (s *Store) Close() error { return nil }
