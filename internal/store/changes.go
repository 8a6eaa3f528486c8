package store

import (
	"context"
	"sync/atomic"

	"github.com/progressd/progressd/internal/progress"
)

// ChangeKind is a transition of a stored job that systems outside progressd
// are told of (webhooks).
type ChangeKind uint8

const (
	// Ended: the stored job went from not terminal to terminal.
	Ended ChangeKind = iota + 1
	// Stalled: the stored job went from not stalled to stalled
	// (progress.Snapshot.Stalled).
	Stalled
)

// Change is one such transition. A store decides it inside the
// transaction that writes the job, from the row as it was (locked, or
// under SQLite's one writer), so one transition makes one Change however
// many writers race: two nodes, a retried flush, a late batch.
type Change struct {
	Kind ChangeKind
	// Snapshot is what was written; JSON its wire form, as stored.
	Snapshot *progress.Snapshot
	JSON     string
}

// OnChange is called by a store inside the transaction of a write that
// makes changes, with them, before it commits; an error rolls the write
// back and Save returns it, so a change is recorded (a webhook event
// queued) exactly when the write is. TTx is the database's transaction
// type (*sql.Tx, pgx.Tx). It runs on the path of a report: it must only
// write in tx, never wait for anything else.
type OnChange[TTx any] func(ctx context.Context, tx TTx, changes []Change) error

// MayChange reports whether writing s can make a Change: only a terminal
// or stalled snapshot can. Stores take their plain path for the rest.
func MayChange(s *progress.Snapshot) bool { return s.State.Terminal() || s.Stalled }

// ChangeHook holds a store's OnChange. Its methods are safe for
// concurrent use; the zero value holds none.
type ChangeHook[TTx any] struct{ fn atomic.Pointer[OnChange[TTx]] }

// Set replaces the OnChange; nil removes it.
func (h *ChangeHook[TTx]) Set(fn OnChange[TTx]) {
	if fn == nil {
		h.fn.Store(nil)
		return
	}
	h.fn.Store(&fn)
}

// Get returns the OnChange, or nil.
func (h *ChangeHook[TTx]) Get() OnChange[TTx] {
	if p := h.fn.Load(); p != nil {
		return *p
	}
	return nil
}
