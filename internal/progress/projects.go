package progress

import "errors"

// ErrBadCursor is returned for a list cursor the server did not make.
var ErrBadCursor = errors.New("bad cursor: pass the next_cursor of the previous page, or none")

// JobCounts counts jobs by state.
type JobCounts struct {
	Queued    int `json:"queued"`
	Running   int `json:"running"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Canceled  int `json:"canceled"`
}

// Add moves n jobs into state st (n < 0 moves them out).
func (c *JobCounts) Add(st State, n int) {
	addByState(st, n, &c.Queued, &c.Running, &c.Succeeded, &c.Failed, &c.Canceled)
}

// addByState adds n to the counter of state st (none for "" or an unknown
// state): the one switch behind Children.Add and JobCounts.Add.
func addByState(st State, n int, queued, running, succeeded, failed, canceled *int) {
	switch st {
	case Queued:
		*queued += n
	case Running:
		*running += n
	case Succeeded:
		*succeeded += n
	case Failed:
		*failed += n
	case Canceled:
		*canceled += n
	}
}

// ProjectSummary is one entry of the project list.
type ProjectSummary struct {
	Project        string    `json:"project"`
	Jobs           JobCounts `json:"jobs"`
	LastActivityAt Time      `json:"last_activity_at"`
}

// ProjectQuery pages through the projects of one owner ("" for all).
type ProjectQuery struct {
	Owner  string
	Limit  int // ≤ 0: DefaultLimit; capped at MaxLimit
	Cursor string
}

// PageSize is q.Limit bounded as a job list's page is (Query.PageSize).
func (q ProjectQuery) PageSize() int { return Query{Limit: q.Limit}.PageSize() }
