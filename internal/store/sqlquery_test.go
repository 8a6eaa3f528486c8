package store_test

import (
	"slices"
	"testing"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
)

// TestSQLListSpellsPlaceholders checks the shared List in both spellings:
// the same clauses, numbered placeholders for PostgreSQL, the arguments in
// placeholder order, and the page size plus one last. The results of each
// filter are checked on both databases by storetest.
func TestSQLListSpellsPlaceholders(t *testing.T) {
	q := progress.Query{Project: "p", Owner: "o", States: []progress.State{progress.Queued, progress.Running}, Cursor: "c", Limit: 7}
	wantArgs := []any{"p", "o", "queued", "running", "c", 8}
	for _, tc := range []struct {
		sql  store.SQL
		want string
	}{
		{store.SQL{Table: "jobs", Placeholder: store.QuestionMark},
			"SELECT id, snapshot FROM jobs WHERE project = ? AND owner = ? AND state IN (?, ?) AND id < ? ORDER BY id DESC LIMIT ?"},
		{store.SQL{Table: "progressd_jobs", Placeholder: store.DollarNumber},
			"SELECT id, snapshot FROM progressd_jobs WHERE project = $1 AND owner = $2 AND state IN ($3, $4) AND id < $5 ORDER BY id DESC LIMIT $6"},
	} {
		got, args := tc.sql.List(q)
		if got != tc.want {
			t.Errorf("List =\n%s\nwant\n%s", got, tc.want)
		}
		if !slices.Equal(args, wantArgs) {
			t.Errorf("List args = %v, want %v", args, wantArgs)
		}
	}
	got, args := store.SQL{Table: "t", Placeholder: store.DollarNumber}.List(progress.Query{})
	if want := "SELECT id, snapshot FROM t ORDER BY id DESC LIMIT $1"; got != want || !slices.Equal(args, []any{progress.DefaultLimit + 1}) {
		t.Errorf("List of the zero query = %q %v, want %q [%d]", got, args, want, progress.DefaultLimit+1)
	}
	if got, want := (store.SQL{Table: "t", Placeholder: store.DollarNumber}).Get(), "SELECT snapshot FROM t WHERE id = $1"; got != want {
		t.Errorf("Get = %q, want %q", got, want)
	}
}
