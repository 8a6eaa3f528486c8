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
	switch st {
	case Queued:
		c.Queued += n
	case Running:
		c.Running += n
	case Succeeded:
		c.Succeeded += n
	case Failed:
		c.Failed += n
	case Canceled:
		c.Canceled += n
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
