package store

import "time"

// SetNow replaces w's clock, for tests of WriteErrorWindow.
func SetNow(w *WriteBehind, now func() time.Time) {
	w.healthMu.Lock()
	defer w.healthMu.Unlock()
	w.now = now
}

// Gathering is how many jobs' durable saves wait for the next group
// commit, for tests of it.
func Gathering(w *WriteBehind) int {
	w.commitMu.Lock()
	defer w.commitMu.Unlock()
	if w.next == nil {
		return 0
	}
	return len(w.next.snaps)
}
