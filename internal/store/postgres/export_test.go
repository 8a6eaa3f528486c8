package postgres

// ListQuery exposes the SELECT List runs, for EXPLAIN in tests.
var ListQuery = queries.List
