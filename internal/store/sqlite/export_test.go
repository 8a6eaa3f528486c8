package sqlite

import (
	"strings"
	"testing"

	"github.com/progressd/progressd/internal/progress"
)

// Test helpers that reach inside the Store.

func Pragma(t *testing.T, s *Store, name string) string {
	t.Helper()
	var v string
	if err := s.db.QueryRowContext(t.Context(), "PRAGMA "+name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return strings.ToLower(v)
}

func Exec(t *testing.T, s *Store, query string) {
	t.Helper()
	if _, err := s.db.ExecContext(t.Context(), query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// ExplainList returns the query plan of List(q), one step a line.
func ExplainList(t *testing.T, s *Store, q progress.Query) string {
	t.Helper()
	query, args := queries.List(q)
	rows, err := s.db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatalf("EXPLAIN: %v", err)
	}
	defer rows.Close()
	var plan strings.Builder
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(detail + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan.String()
}

// SchemaVersion is the version the migrations bring a database to.
func SchemaVersion() int { return len(migrations) }
