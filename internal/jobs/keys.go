package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
)

// IdempotencyTTL is how long an Idempotency-Key holds: a create with the
// same key from the same caller within it returns the first answer.
const IdempotencyTTL = 24 * time.Hour

// CodeIdempotencyConflict answers a create whose Idempotency-Key was used
// with another body.
const CodeIdempotencyConflict = "idempotency_conflict"

// createKeyed records snap with req's idempotency key. If the caller used
// the key within IdempotencyTTL, nothing is created: with the same body
// (and owner) the first answer is returned (replay), with another an
// idempotency_conflict.
func (s *Service) createKeyed(ctx context.Context, owner string, req CreateRequest, snap progress.Snapshot) (progress.Snapshot, bool, error) {
	body, err := json.Marshal(struct {
		Owner string
		CreateRequest
	}{owner, req})
	if err != nil {
		return progress.Snapshot{}, false, fmt.Errorf("jobs: encode create request: %w", err)
	}
	sum := sha256.Sum256(body)
	caller := req.Caller
	if caller == "" {
		caller = owner
	}
	k := store.IdempotencyKey{Owner: caller, Key: req.IdempotencyKey, BodyHash: hex.EncodeToString(sum[:]), First: snap, CreatedAt: snap.CreatedAt.Time}
	held, err := s.cfg.DB.CreateKeyed(ctx, k, snap.CreatedAt.Add(-IdempotencyTTL))
	switch {
	case err == nil:
		return snap, false, nil
	case !errors.Is(err, store.ErrKeyTaken):
		return progress.Snapshot{}, false, s.reject(createError(req.ParentID, err))
	case held.BodyHash != k.BodyHash:
		return progress.Snapshot{}, false, s.reject(&progress.Error{Code: CodeIdempotencyConflict, Message: fmt.Sprintf(
			"Idempotency-Key %q was used at %s for another request (job %s): send a new key for a new job",
			k.Key, held.CreatedAt.UTC().Format(time.RFC3339), held.First.JobID)})
	}
	s.cfg.Metrics.replayed.Inc()
	return held.First, true, nil
}

// keyBatch is how many expired keys one cleanup statement deletes, and
// maxKeyBatches bounds one cleanup run; the next run goes on.
const (
	keyBatch      = 500
	maxKeyBatches = 200
)

// ExpireKeys deletes idempotency keys older than IdempotencyTTL, keyBatch
// at a time, and returns how many it deleted. Creates already ignore such
// keys; this only reclaims their space.
func (s *Service) ExpireKeys(ctx context.Context) (int, error) {
	before := s.cfg.Now().Add(-IdempotencyTTL)
	total := 0
	for range maxKeyBatches {
		n, err := s.cfg.DB.ExpireKeys(ctx, before, keyBatch)
		total += n
		if err != nil || n < keyBatch {
			return total, err
		}
	}
	return total, nil
}

// ExpireKeysEvery runs ExpireKeys every interval until ctx ends. Nodes
// sharing a database may all run it: each batch deletes what is there.
func (s *Service) ExpireKeysEvery(ctx context.Context, every time.Duration) {
	tick(ctx, every, func() {
		n, err := s.ExpireKeys(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.cfg.Log.Warn("deleting expired idempotency keys failed; will retry", "deleted", n, "err", err, "retry_in", every)
		case n > 0:
			s.cfg.Log.Debug("deleted expired idempotency keys", "count", n)
		}
	})
}

// tick calls fn every interval until ctx ends.
func tick(ctx context.Context, every time.Duration, fn func()) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fn()
	}
}
