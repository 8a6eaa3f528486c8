package postgres

// ListQuery exposes the SELECT List runs, for EXPLAIN in tests.
var ListQuery = queries.List

// SchemaVersion is the version the migrations bring a database to.
func SchemaVersion() int { return len(migrations) }
