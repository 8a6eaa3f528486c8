package store_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/store"
	"github.com/progressd/progressd/internal/store/sqlite"
	"github.com/progressd/progressd/internal/testsvc"
)

// TestWriteBehindReadyReflectsFailingWrites: with the database's disk full
// (a real tmpfs filled up), a write fails and Ready fails, naming the
// error, although the database still answers reads; once a write succeeds
// Ready is fine again, and a failure with no write after it stops counting
// after WriteErrorWindow.
func TestWriteBehindReadyReflectsFailingWrites(t *testing.T) {
	disk := testsvc.TinyDisk(t, 1<<20)
	inner, err := sqlite.Open(t.Context(), filepath.Join(disk.Dir(), "progressd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inner.Close() })
	b := &bundle{db: &faultyStore{Store: inner, hung: make(chan struct{}, 1)}}
	b.wb = store.NewWriteBehind(b.db, time.Hour, nil)
	t.Cleanup(func() { _ = b.wb.Close(context.Background()) })
	b.job = b.newJob(t, 0)
	if err := b.wb.Ready(t.Context()); err != nil {
		t.Fatalf("Ready before any failure: %v", err)
	}

	disk.Fill()
	if err := b.wb.Save(t.Context(), at(b.job, 2), true); err == nil || !strings.Contains(err.Error(), "full") {
		t.Fatalf("durable Save on a full disk = %v, want a disk-full error", err)
	}
	if err := inner.Ping(t.Context()); err != nil {
		t.Fatalf("the database should still answer reads: %v", err)
	}
	err = b.wb.Ready(t.Context())
	if err == nil || !strings.Contains(err.Error(), "writes fail") || !strings.Contains(err.Error(), "full") {
		t.Fatalf("Ready with writes failing = %v", err)
	}

	disk.Free()
	if err := b.wb.Flush(t.Context()); err != nil { // the kept snapshot is written now
		t.Fatal(err)
	}
	if err := b.wb.Ready(t.Context()); err != nil {
		t.Fatalf("Ready after a write succeeded: %v", err)
	}

	disk.Fill()
	if err := b.wb.Save(t.Context(), at(b.job, 3), true); err == nil {
		t.Fatal("durable Save on a full disk succeeded")
	}
	if b.wb.Ready(t.Context()) == nil {
		t.Fatal("Ready with writes failing says ready")
	}
	store.SetNow(b.wb, func() time.Time { return time.Now().Add(store.WriteErrorWindow) })
	if err := b.wb.Ready(t.Context()); err != nil {
		t.Fatalf("Ready a window after the last failed write, with none tried since: %v", err)
	}
	disk.Free()
}
