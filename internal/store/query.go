package store

// Page sizes of List. Every implementation uses Query.PageSize so that a
// client sees the same pages whichever database is behind the server.
const (
	// DefaultLimit is the page size when Query.Limit is ≤ 0.
	DefaultLimit = 50
	// MaxLimit caps Query.Limit: one request must not read the whole table.
	MaxLimit = 500
)

// PageSize returns the number of jobs List returns for q at most:
// q.Limit, or DefaultLimit when it is ≤ 0, capped at MaxLimit.
func (q Query) PageSize() int {
	switch {
	case q.Limit <= 0:
		return DefaultLimit
	case q.Limit > MaxLimit:
		return MaxLimit
	}
	return q.Limit
}
