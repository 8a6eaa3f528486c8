package store

import "time"

// SetNow replaces w's clock, for tests of WriteErrorWindow.
func SetNow(w *WriteBehind, now func() time.Time) {
	w.healthMu.Lock()
	defer w.healthMu.Unlock()
	w.now = now
}
