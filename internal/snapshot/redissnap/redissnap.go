// Package redissnap is the snapshot.Store that several nodes share: the
// latest snapshot of every live job and the recent jobs of each project and
// owner, in Redis.
//
// It is a subpackage, not a file of package snapshot, so that go-redis stays
// out of the import graph of everything that only needs the interface (jobs,
// gateway, api and their tests); the durable stores are laid out the same way
// (store/sqlite, store/postgres).
//
// # Layout
//
// Under a configurable prefix (Options.Prefix, default "progressd:"):
//
//	job:<id>                 hash: seq, fin, env = {"snap": <snapshot>, "rate": <ETA state>}
//	active:project:<name>    sorted set of active job ids (all scored 0: ordered by id)
//	active:owner:<name>
//	finished:project:<name>  sorted set of finished job ids scored by finish time,
//	finished:owner:<name>    trimmed to RecentFinished, expiring after FinishedTTL
//
// The envelope carries the ETA estimator state beside the snapshot (it is
// not part of the wire shape), so a node that applies the next report to a
// job another node updated last computes the same ETA; a parent's
// aggregate (progress.Aggregate) travels the same way.
//
// Finished jobs expire FinishedTTL (default 24 h) after they finish: the
// durable store keeps them for good, and jobs.Service reads them from there
// when they are gone here. Active jobs never expire. Give the prefix a hash
// tag ("{progressd}:") to run on Redis Cluster: the scripts touch a job and
// its indexes at once, so they must share a slot.
//
// # Update across nodes
//
// Update reads the job, calls fn, and writes the result with a Lua
// compare-and-set on seq: it is stored only if the stored seq is still the
// one fn saw. If another node wrote in between, the script answers with the
// newer snapshot and Update calls fn again on it, up to MaxAttempts times,
// so a lagging node can never overwrite a newer snapshot and seq grows by
// exactly one per update. Updates of one job within a process wait for each
// other on a local lock first, so retries only happen between nodes.
//
// The read is usually skipped: the store remembers the last snapshot it
// wrote of each job (up to CacheSize jobs) and offers that to the
// compare-and-set. A job's reports mostly arrive at one node, so the guess
// is mostly right and an update is one round trip (EVALSHA) with no JSON to
// decode; when another node wrote since, the script's answer corrects it at
// the cost of one retry. A job whose guess was wrong last time is read
// first, until a read shows that no other node wrote in between: reports
// that alternate between nodes (a round-robin balancer in front of them)
// then cost a read and a write, not a refused write and another. An error
// fn returns is final only when fn saw what Redis holds; one returned on
// the guess is checked again on a fresh read. The remembered snapshot is
// never served by Get or Recent, which always read Redis.
//
// Because of those retries, fn may be called more than once per Update: it
// must be a function of prev alone (progress.Apply is).
//
// Seqs are compared as Lua numbers, exact up to 2^53.
//
// All methods are safe for concurrent use.
package redissnap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/snapshot"
)

// ErrContention is returned by Update when other nodes changed the job
// every time this one tried, MaxAttempts times in a row. Nothing was
// stored; the caller may try again.
var ErrContention = errors.New("redissnap: job changed by other nodes on every attempt")

// ErrClosed is returned by every method after Close.
var ErrClosed = errors.New("redissnap: store closed")

// Options configure a Store. Zero values take the defaults.
type Options struct {
	// Prefix starts every key. Default "progressd:". Nodes that share
	// jobs must use the same prefix.
	Prefix string
	// RecentFinished is how many finished jobs each project and owner
	// index keeps for Recent. Default 50.
	RecentFinished int
	// FinishedTTL is how long a finished job stays after it finished.
	// Default 24 h.
	FinishedTTL time.Duration
	// MaxAttempts bounds how many times Update tries when other nodes
	// change the job in between. Default 100.
	MaxAttempts int
	// CacheSize is how many jobs' last written snapshot Update remembers
	// to skip its read (see the package doc). Default 10,000; -1 turns
	// it off.
	CacheSize int
}

func (o *Options) defaults() {
	if o.Prefix == "" {
		o.Prefix = "progressd:"
	}
	if o.RecentFinished <= 0 {
		o.RecentFinished = 50
	}
	if o.FinishedTTL <= 0 {
		o.FinishedTTL = 24 * time.Hour
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 100
	}
	if o.CacheSize == 0 {
		o.CacheSize = 10_000
	}
}

// Store is the Redis snapshot.Store.
type Store struct {
	rdb   redis.UniversalClient
	opts  Options
	ttlMS string
	keep  string
	locks keyedLocks
	last  lastWritten

	mu     sync.RWMutex
	closed bool
}

var _ snapshot.Store = (*Store)(nil)

// New returns a Store on rdb. The caller owns rdb: it stays open after
// Close, for the broker and anything else that shares it.
func New(rdb redis.UniversalClient, o Options) *Store {
	o.defaults()
	return &Store{
		rdb:   rdb,
		opts:  o,
		ttlMS: strconv.FormatInt(o.FinishedTTL.Milliseconds(), 10),
		keep:  strconv.Itoa(o.RecentFinished),
		locks: keyedLocks{m: make(map[string]*keyLock)},
		last:  lastWritten{m: make(map[string]written), max: o.CacheSize},
	}
}

// Prefix returns the key prefix in use.
func (s *Store) Prefix() string { return s.opts.Prefix }

func (s *Store) jobKey(id string) string { return s.opts.Prefix + "job:" + id }

// keys returns the five keys the scripts take for snapshot snap.
func (s *Store) keys(snap *progress.Snapshot) []string {
	p := s.opts.Prefix
	return []string{
		p + "job:" + snap.JobID,
		p + "active:project:" + snap.Project,
		p + "active:owner:" + snap.Owner,
		p + "finished:project:" + snap.Project,
		p + "finished:owner:" + snap.Owner,
	}
}

// indexArgs are ARGV[1..5] of every script (see scripts.go).
func (s *Store) indexArgs(snap *progress.Snapshot, extra ...any) []any {
	fin, score := "0", int64(0)
	if snap.State.Terminal() {
		fin = "1"
		at := snap.UpdatedAt
		if snap.FinishedAt != nil {
			at = *snap.FinishedAt
		}
		score = at.UnixMilli()
	}
	return append([]any{snap.JobID, fin, score, s.keep, s.ttlMS}, extra...)
}

func (s *Store) checkOpen() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return nil
}

// Put implements snapshot.Store.
func (s *Store) Put(ctx context.Context, snap progress.Snapshot) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	if snap.JobID == "" {
		return errors.New("redissnap: put: snapshot has no job_id")
	}
	env, err := encodeEnvelope(&snap)
	if err != nil {
		return fmt.Errorf("redissnap: put job %s: %w", snap.JobID, err)
	}
	args := s.indexArgs(&snap, strconv.FormatUint(snap.Seq, 10), env)
	stored, err := putScript.Run(ctx, s.rdb, s.keys(&snap), args...).Int()
	if err != nil {
		return fmt.Errorf("redissnap: put job %s: %w", snap.JobID, err)
	}
	if stored == 1 {
		s.last.remember(snap, false)
	}
	return nil
}

// Update implements snapshot.Store. See the package doc for how it stays
// atomic across nodes.
func (s *Store) Update(ctx context.Context, id string, fn func(progress.Snapshot) (progress.Snapshot, error)) (progress.Snapshot, error) {
	if err := s.checkOpen(); err != nil {
		return progress.Snapshot{}, err
	}
	unlock, err := s.locks.lock(ctx, id)
	if err != nil {
		return progress.Snapshot{}, fmt.Errorf("redissnap: update job %s: %w", id, err)
	}
	defer unlock()

	// prev is what fn is applied to: the snapshot this store wrote last if
	// it remembers one (a guess), else what Redis holds (verified). A job
	// whose last guess was wrong (its reports alternate between nodes) is
	// read first: the guess would likely be wrong again, and a refused
	// compare-and-set costs more than a read.
	last, ok := s.last.get(id)
	prev, verified, missed := last.snap, false, false
	read := func() error {
		raw, err := s.rdb.HGet(ctx, s.jobKey(id), "env").Result()
		if errors.Is(err, redis.Nil) {
			return snapshot.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("redissnap: update job %s: read: %w", id, err)
		}
		prev, err = decodeEnvelope(id, raw)
		verified = err == nil
		return err
	}
	if !ok || last.missed {
		if err := read(); err != nil {
			return progress.Snapshot{}, err
		}
		missed = ok && last.snap.Seq != prev.Seq // another node wrote since, again
	}
	for attempt := 1; ; attempt++ {
		next, err := fn(prev)
		if err != nil && !verified {
			// Refused on a guess (a report may be judged against the
			// job's current/total): judge it again on what Redis holds.
			s.last.forget(id)
			if err := read(); err != nil {
				return progress.Snapshot{}, err
			}
			continue
		}
		if err != nil {
			return progress.Snapshot{}, err
		}
		if next.Seq != prev.Seq+1 || next.JobID != id {
			return progress.Snapshot{}, fmt.Errorf("redissnap: update of %s returned job %s seq %d after seq %d; it must return the same job at seq+1", id, next.JobID, next.Seq, prev.Seq)
		}
		env, err := encodeEnvelope(&next)
		if err != nil {
			return progress.Snapshot{}, fmt.Errorf("redissnap: update job %s: %w", id, err)
		}
		args := s.indexArgs(&next, strconv.FormatUint(prev.Seq, 10), strconv.FormatUint(next.Seq, 10), env)
		res, err := casScript.Run(ctx, s.rdb, s.keys(&next), args...).Result()
		if err != nil {
			s.last.forget(id) // the write may or may not have happened
			return progress.Snapshot{}, fmt.Errorf("redissnap: update job %s: write: %w", id, err)
		}
		switch res := res.(type) {
		case int64:
			if res == 1 {
				s.last.remember(next, missed)
				return next, nil
			}
			s.last.forget(id)
			return progress.Snapshot{}, snapshot.ErrNotFound // expired or deleted
		case string:
			// Another node wrote since the snapshot fn saw: apply fn to
			// the stored one.
			if prev, err = decodeEnvelope(id, res); err != nil {
				s.last.forget(id)
				return progress.Snapshot{}, err
			}
			missed = missed || !verified
			verified = true
		default:
			s.last.forget(id)
			return progress.Snapshot{}, fmt.Errorf("redissnap: update job %s: unexpected script reply %T", id, res)
		}
		if attempt == s.opts.MaxAttempts {
			s.last.remember(prev, true)
			return progress.Snapshot{}, fmt.Errorf("redissnap: update job %s: %w (%d attempts); report less often from more places, or retry", id, ErrContention, attempt)
		}
		if attempt >= 3 {
			// Several nodes keep colliding on this job: spread them out.
			if err := pause(ctx, attempt); err != nil {
				return progress.Snapshot{}, fmt.Errorf("redissnap: update job %s: %w", id, err)
			}
		}
	}
}

// pause waits a random time that grows with attempt, up to 5 ms.
func pause(ctx context.Context, attempt int) error {
	d := time.Duration(rand.Int64N(int64(min(attempt*200, 5000)))) * time.Microsecond
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Get implements snapshot.Store.
func (s *Store) Get(ctx context.Context, id string) (progress.Snapshot, error) {
	if err := s.checkOpen(); err != nil {
		return progress.Snapshot{}, err
	}
	raw, err := s.rdb.HGet(ctx, s.jobKey(id), "env").Result()
	if errors.Is(err, redis.Nil) {
		return progress.Snapshot{}, snapshot.ErrNotFound
	}
	if err != nil {
		return progress.Snapshot{}, fmt.Errorf("redissnap: get job %s: %w", id, err)
	}
	return decodeEnvelope(id, raw)
}

// Recent implements snapshot.Store: two round trips, one for the indexes
// and one for the snapshots. A finished job whose snapshot expired since
// it was indexed is left out.
func (s *Store) Recent(ctx context.Context, f progress.Filter, limit int) ([]progress.Snapshot, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	kind, name := "project:", f.Project
	if f.Project == "" {
		kind, name = "owner:", f.Owner
	}
	stop := int64(-1)
	if limit > 0 {
		stop = int64(limit) - 1
	}
	p := s.opts.Prefix
	pipe := s.rdb.Pipeline()
	activeCmd := pipe.ZRevRange(ctx, p+"active:"+kind+name, 0, -1)
	finishedCmd := pipe.ZRevRange(ctx, p+"finished:"+kind+name, 0, stop)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("redissnap: recent jobs of %s%s: %w", kind, name, err)
	}
	ids := append(activeCmd.Val(), finishedCmd.Val()...)
	if len(ids) == 0 {
		return []progress.Snapshot{}, nil
	}
	pipe = s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGet(ctx, s.jobKey(id), "env")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redissnap: recent jobs of %s%s: %w", kind, name, err)
	}
	out := make([]progress.Snapshot, 0, len(ids))
	for i, cmd := range cmds {
		raw, err := cmd.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("redissnap: recent jobs of %s%s: %w", kind, name, err)
		}
		snap, err := decodeEnvelope(ids[i], raw)
		if err != nil {
			return nil, err
		}
		out = append(out, snap)
	}
	return out, nil
}

// Delete implements snapshot.Store: the job's key, and its place in the
// finished indices of its project and owner (Recent skips ids whose key
// is gone, so a racing index update is harmless).
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	snap, err := s.Get(ctx, id)
	if errors.Is(err, snapshot.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	k := s.keys(&snap)
	pipe := s.rdb.TxPipeline()
	pipe.Del(ctx, k[0])
	for _, ix := range k[1:] {
		pipe.ZRem(ctx, ix, id)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redissnap: delete job %s: %w", id, err)
	}
	s.last.forget(id)
	return nil
}

// Ping implements snapshot.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redissnap: ping: %w", err)
	}
	return nil
}

// Close makes the store unusable. It does not close the Redis client,
// which the caller owns. Calling it again does nothing.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

// envelope is what a job's env field holds.
type envelope struct {
	Snap progress.Snapshot   `json:"snap"`
	Rate *progress.Rate      `json:"rate"`
	Agg  *progress.Aggregate `json:"agg,omitempty"`
}

// encodeEnvelope writes {"snap":<wire form>,"rate":<estimator>,"agg":<a
// parent's aggregate>}; the snapshot goes through its hand-written encoder.
func encodeEnvelope(s *progress.Snapshot) ([]byte, error) {
	b := make([]byte, 0, 640)
	b = append(b, `{"snap":`...)
	b, err := s.AppendJSON(b)
	if err != nil {
		return nil, err
	}
	if s.Rate != (progress.Rate{}) {
		rate, err := json.Marshal(s.Rate)
		if err != nil {
			return nil, fmt.Errorf("encode ETA state: %w", err)
		}
		b = append(b, `,"rate":`...)
		b = append(b, rate...)
	}
	if s.Agg != (progress.Aggregate{}) {
		agg, err := json.Marshal(s.Agg)
		if err != nil {
			return nil, fmt.Errorf("encode a parent's aggregate: %w", err)
		}
		b = append(b, `,"agg":`...)
		b = append(b, agg...)
	}
	return append(b, '}'), nil
}

func decodeEnvelope(id, raw string) (progress.Snapshot, error) {
	var e envelope
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		return progress.Snapshot{}, fmt.Errorf("redissnap: job %s: stored snapshot is not valid JSON: %w (the key was changed outside progressd, or by another version: check that every node runs the same progressd)", id, err)
	}
	if e.Snap.JobID != id {
		return progress.Snapshot{}, fmt.Errorf("redissnap: job %s: stored snapshot is of job %q (the key was changed outside progressd)", id, e.Snap.JobID)
	}
	if e.Snap.Stages == nil {
		e.Snap.Stages = []progress.Stage{}
	}
	if e.Rate != nil {
		e.Snap.Rate = *e.Rate
	}
	if e.Agg != nil {
		e.Snap.Agg = *e.Agg
	}
	return e.Snap, nil
}

// lastWritten remembers the last snapshot this store wrote of each job, as
// Update's guess of what Redis holds, and whether the guess was wrong last
// time. It is bounded: past max jobs, an arbitrary one is forgotten (map
// iteration order is random), and finished jobs are not kept, since no
// update follows.
type lastWritten struct {
	mu  sync.Mutex
	m   map[string]written
	max int
}

type written struct {
	snap   progress.Snapshot
	missed bool // the last Update of the job found another node's write
}

func (c *lastWritten) get(id string) (written, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.m[id]
	return w, ok
}

func (c *lastWritten) remember(s progress.Snapshot, missed bool) {
	if c.max < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.State.Terminal() {
		delete(c.m, s.JobID)
		return
	}
	if _, ok := c.m[s.JobID]; !ok && len(c.m) >= c.max {
		for id := range c.m {
			delete(c.m, id)
			break
		}
	}
	c.m[s.JobID] = written{snap: s, missed: missed}
}

func (c *lastWritten) forget(id string) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

// keyedLocks serializes Updates of one job within this process, so that
// its goroutines queue locally instead of colliding in Redis and retrying.
// A job's lock exists only while someone holds or waits for it.
type keyedLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{} // holds one token while locked
	refs int           // holders and waiters; guarded by keyedLocks.mu
}

// lock takes id's lock, or gives up when ctx ends.
func (k *keyedLocks) lock(ctx context.Context, id string) (unlock func(), err error) {
	k.mu.Lock()
	l := k.m[id]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.m[id] = l
	}
	l.refs++
	k.mu.Unlock()

	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; k.release(id, l) }, nil
	case <-ctx.Done():
		k.release(id, l)
		return nil, ctx.Err()
	}
}

func (k *keyedLocks) release(id string, l *keyLock) {
	k.mu.Lock()
	l.refs--
	if l.refs == 0 {
		delete(k.m, id)
	}
	k.mu.Unlock()
}
