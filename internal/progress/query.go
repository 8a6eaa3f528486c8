package progress

import "errors"

// ErrNotFound is returned for a job id that no store knows. It lives here,
// below every package that reads jobs, so that the API and the gateway can
// match it without importing the service that returns it.
var ErrNotFound = errors.New("job not found")

// Query selects a page of jobs from the durable record: the HTTP API builds
// it, package jobs passes it on, and every store implements it. It lives
// here, below all three, so that no reader of jobs has to import the store.
// Zero fields match everything.
type Query struct {
	Project string
	Owner   string
	// States, when non-empty, matches jobs in any of these states.
	States []State
	// Parent, when set, matches the direct children of that job.
	Parent string
	// Tag, when set, matches the jobs with that tag.
	Tag string
	// Limit is the page size; see PageSize.
	Limit int
	// Cursor is the next value of a previous page; "" starts at the newest.
	Cursor string
}

// Page sizes of a Query. Every store uses PageSize so that a client sees the
// same pages whichever database is behind the server.
const (
	// DefaultLimit is the page size when Query.Limit is ≤ 0.
	DefaultLimit = 50
	// MaxLimit caps Query.Limit: one request must not read the whole table.
	MaxLimit = 500
)

// PageSize returns the number of jobs a page of q holds at most: q.Limit,
// or DefaultLimit when it is ≤ 0, capped at MaxLimit.
func (q Query) PageSize() int {
	switch {
	case q.Limit <= 0:
		return DefaultLimit
	case q.Limit > MaxLimit:
		return MaxLimit
	}
	return q.Limit
}

// Filter selects the recent jobs of one project (Owner empty) or of one
// owner (Project empty): what a project: or user: subscriber is sent first.
// jobs.Service.Recent also takes both, for one owner's jobs of a project;
// a snapshot store is only given one.
type Filter struct {
	Project string
	Owner   string
	// Parent selects the children of a job, Tag the jobs with a tag; the
	// durable store answers those (the snapshot store indexes neither).
	Parent string
	Tag    string
}
