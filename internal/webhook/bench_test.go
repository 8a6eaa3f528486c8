package webhook_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
	"github.com/progressd/progressd/internal/store/sqlite"
	"github.com/progressd/progressd/internal/webhook"
)

// BenchmarkTerminalSave is what an event costs the report that ends a
// job: one terminal Save on SQLite, with the event recorded in its
// transaction (webhooks) or not (none). The queue is not started, so
// nothing is delivered meanwhile.
//
//	go test -run '^$' -bench BenchmarkTerminalSave -benchtime 3000x ./internal/webhook/
func BenchmarkTerminalSave(b *testing.B) {
	for _, tc := range []struct {
		name     string
		webhooks bool
	}{{"none", false}, {"webhooks", true}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := b.Context()
			db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "progressd.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			if tc.webhooks {
				q, err := webhook.OpenSQLite(ctx, webhook.Config{URLs: []string{"http://127.0.0.1:1/hooks"}, Secret: secret,
					Registerer: prometheus.NewRegistry()}, db.DB())
				if err != nil {
					b.Fatal(err)
				}
				db.SetOnChange(q.Record)
			} else {
				db.SetOnChange(func(context.Context, *sql.Tx, []store.Change) error { return nil })
			}
			ends := make([]progress.Snapshot, b.N)
			for i := range ends {
				s, err := progress.New(progress.NewJob{ID: uuid.Must(uuid.NewV7()).String(), Project: "p", Owner: "alice"}, time.Now())
				if err != nil {
					b.Fatal(err)
				}
				if err := db.Create(ctx, s); err != nil {
					b.Fatal(err)
				}
				ends[i], _ = progress.Apply(s, progress.Report{State: ptr(progress.Succeeded)}, time.Now())
			}
			b.ResetTimer()
			for i := range b.N {
				if err := db.Save(ctx, ends[i:i+1]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
