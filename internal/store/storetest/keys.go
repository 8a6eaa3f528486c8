package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
)

// keyTests are the suite's tests of idempotency keys (store/keys.go).
var keyTests = []struct {
	name string
	fn   func(t *testing.T, b *bundle)
}{
	{"KeyCreateThenTaken", testKeyCreateThenTaken},
	{"KeyOwnersNeverMeet", testKeyOwnersNeverMeet},
	{"KeyExpiredIsReplaced", testKeyExpiredIsReplaced},
	{"KeyConcurrentCreates", testKeyConcurrentCreates},
	{"KeyJobIDTakenRecordsNoKey", testKeyJobIDTaken},
	{"KeyExpireInBatches", testKeyExpireInBatches},
	{"KeyReopen", testKeyReopen},
}

// key returns an idempotency key of owner for a new job of that owner,
// made at b.base plus age.
func (b *bundle) key(t *testing.T, owner, key, hash string, age time.Duration) store.IdempotencyKey {
	t.Helper()
	return store.IdempotencyKey{Owner: owner, Key: key, BodyHash: hash, First: b.job(t, "p1", owner, "a"), CreatedAt: b.base.Add(age)}
}

// createKeyed calls CreateKeyed with keys before b.base counting as expired.
func (b *bundle) createKeyed(t *testing.T, k store.IdempotencyKey) (store.IdempotencyKey, error) {
	t.Helper()
	return b.store.CreateKeyed(t.Context(), k, b.base)
}

// mustTaken fails t unless k is refused for the key held, whose first
// answer is first, and k's job was not created.
func (b *bundle) mustTaken(t *testing.T, k store.IdempotencyKey, hash string, first progress.Snapshot) {
	t.Helper()
	held, err := b.createKeyed(t, k)
	if !errors.Is(err, store.ErrKeyTaken) {
		t.Fatalf("CreateKeyed with a held key = %v, want ErrKeyTaken", err)
	}
	if held.BodyHash != hash || held.Owner != k.Owner || held.Key != k.Key {
		t.Fatalf("held key = %+v, want owner %s key %s hash %s", held, k.Owner, k.Key, hash)
	}
	Equal(t, held.First, first)
	if _, err := b.store.Get(t.Context(), k.First.JobID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused create made its job: Get = %v", err)
	}
}

func testKeyCreateThenTaken(t *testing.T, b *bundle) {
	k := b.key(t, "alice", "k1", "h1", time.Minute)
	got, err := b.createKeyed(t, k)
	if err != nil {
		t.Fatalf("CreateKeyed: %v", err)
	}
	Equal(t, got.First, k.First)
	Equal(t, b.get(t, k.First.JobID), k.First)
	// A later report does not change the first answer.
	b.save(t, report(t, k.First, 0.5, "half"))
	b.mustTaken(t, b.key(t, "alice", "k1", "h1", 2*time.Minute), "h1", k.First)
	b.mustTaken(t, b.key(t, "alice", "k1", "other body", 2*time.Minute), "h1", k.First)
}

func testKeyOwnersNeverMeet(t *testing.T, b *bundle) {
	for _, owner := range []string{"alice", "bob", "alice2", "ALICE"} {
		k := b.key(t, owner, "same", "h-"+owner, time.Minute)
		if _, err := b.createKeyed(t, k); err != nil {
			t.Fatalf("CreateKeyed for %q: %v", owner, err)
		}
	}
}

func testKeyExpiredIsReplaced(t *testing.T, b *bundle) {
	old := b.key(t, "alice", "k", "h1", -time.Hour) // before b.base: expired
	if _, err := b.createKeyed(t, old); err != nil {
		t.Fatal(err)
	}
	k := b.key(t, "alice", "k", "h2", time.Minute)
	if _, err := b.createKeyed(t, k); err != nil {
		t.Fatalf("CreateKeyed over an expired key: %v", err)
	}
	b.get(t, old.First.JobID) // the old job stays
	b.mustTaken(t, b.key(t, "alice", "k", "h2", 2*time.Minute), "h2", k.First)
}

func testKeyConcurrentCreates(t *testing.T, b *bundle) {
	const n = 8
	keys := make([]store.IdempotencyKey, n)
	for i := range keys {
		keys[i] = b.key(t, "alice", "race", "h", time.Minute)
	}
	errs := make([]error, n)
	held := make([]store.IdempotencyKey, n)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() { held[i], errs[i] = b.createKeyed(t, keys[i]) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("two creates with one key both made a job: %d and %d", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrKeyTaken):
			t.Fatalf("create %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no create with the key made a job")
	}
	got, _, err := b.store.List(t.Context(), progress.Query{})
	if err != nil || len(got) != 1 || got[0].JobID != keys[winner].First.JobID {
		t.Fatalf("List = %v, %v; want only the winner's job", jobIDs(got), err)
	}
	for i, h := range held {
		if i != winner && h.First.JobID != keys[winner].First.JobID {
			t.Fatalf("create %d was told of job %s, want the winner's %s", i, h.First.JobID, keys[winner].First.JobID)
		}
	}
}

func testKeyJobIDTaken(t *testing.T, b *bundle) {
	existing := b.job(t, "p1", "alice", "a")
	b.create(t, existing)
	k := b.key(t, "alice", "k", "h", time.Minute)
	k.First = existing
	if _, err := b.createKeyed(t, k); !errors.Is(err, store.ErrExists) {
		t.Fatalf("CreateKeyed of an existing job id = %v, want ErrExists", err)
	}
	// The key was not recorded: the same key makes a job now.
	if _, err := b.createKeyed(t, b.key(t, "alice", "k", "h", time.Minute)); err != nil {
		t.Fatalf("the failed create kept its key: %v", err)
	}
}

func testKeyExpireInBatches(t *testing.T, b *bundle) {
	keys := make([]store.IdempotencyKey, 5)
	for i := range keys {
		keys[i] = b.key(t, "alice", string(rune('a'+i)), "h", time.Duration(i)*time.Minute)
		if _, err := b.createKeyed(t, keys[i]); err != nil {
			t.Fatal(err)
		}
	}
	before := b.base.Add(3 * time.Minute) // keys 0, 1 and 2
	for _, want := range []int{2, 1, 0} {
		n, err := b.store.ExpireKeys(t.Context(), before, 2)
		if err != nil || n != want {
			t.Fatalf("ExpireKeys = %d, %v; want %d", n, err, want)
		}
	}
	for i, k := range keys {
		again := b.key(t, "alice", k.Key, "h", time.Minute)
		_, err := b.createKeyed(t, again)
		if expired := i < 3; expired != (err == nil) {
			t.Fatalf("key %d (expired %v): CreateKeyed = %v", i, expired, err)
		}
		b.get(t, k.First.JobID) // expiry keeps the jobs
	}
}

func testKeyReopen(t *testing.T, b *bundle) {
	k := b.key(t, "alice", "k", "h", time.Minute)
	if _, err := b.createKeyed(t, k); err != nil {
		t.Fatal(err)
	}
	if err := b.store.Close(); err != nil {
		t.Fatal(err)
	}
	b.store = b.open(t)
	b.mustTaken(t, b.key(t, "alice", "k", "h", time.Minute), "h", k.First)
}
