package store

import (
	"encoding/json"
	"fmt"

	"github.com/progressd/progressd/internal/progress"
)

// Rows is what ReadPage needs of a query result: *sql.Rows and pgx.Rows
// both have it, so the SQL stores share one way of reading a page.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// DecodeSnapshot reads a snapshot stored as JSON text for job id.
func DecodeSnapshot(id, text string) (progress.Snapshot, error) {
	var s progress.Snapshot
	if err := json.Unmarshal([]byte(text), &s); err != nil {
		return progress.Snapshot{}, fmt.Errorf("job %s: stored snapshot is not valid JSON: %w (the row was changed outside progressd)", id, err)
	}
	if s.Stages == nil {
		s.Stages = []progress.Stage{} // the wire shape has "stages": [], never null
	}
	return s, nil
}

// ReadPage reads a List page from rows of (id, snapshot JSON) ordered
// newest first and selected with LIMIT size+1: the extra row, if it comes,
// says a next page exists, so the last page has no cursor even when it is
// full. It reads rows to the end, which is what makes Err final for every
// driver.
func ReadPage(rows Rows, size int) ([]progress.Snapshot, string, error) {
	jobs := make([]progress.Snapshot, 0, min(size, 64))
	more := false
	for rows.Next() {
		if len(jobs) == size {
			more = true
			continue
		}
		var id, text string
		if err := rows.Scan(&id, &text); err != nil {
			return nil, "", err
		}
		snap, err := DecodeSnapshot(id, text)
		if err != nil {
			return nil, "", err
		}
		jobs = append(jobs, snap)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if more {
		next = jobs[len(jobs)-1].JobID
	}
	return jobs, next, nil
}
