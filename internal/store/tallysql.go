package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// TallySQL is the three upserts that apply a Tally, written once for both
// SQL stores (the syntax is common to SQLite and PostgreSQL): counts are
// added, not set, so each transaction moves them by exactly what it
// changed, and the last activity keeps the highest value.
type TallySQL struct{ group, owner, project string }

// NewTallySQL returns the statements for tables named with prefix
// ("" or "progressd_"); dollar selects $1-style placeholders.
func NewTallySQL(prefix string, dollar bool) TallySQL {
	const addCounts = `queued = p.queued + excluded.queued, running = p.running + excluded.running,
		succeeded = p.succeeded + excluded.succeeded, failed = p.failed + excluded.failed,
		canceled = p.canceled + excluded.canceled,
		last_activity_at = CASE WHEN excluded.last_activity_at > p.last_activity_at
			THEN excluded.last_activity_at ELSE p.last_activity_at END`
	bind := func(q string) string { return bindDollar(q, dollar) }
	return TallySQL{
		group: bind(`INSERT INTO ` + prefix + `job_children AS g
			(parent_id, version, total, queued, running, succeeded, failed, canceled, weight_sum, done_wp, dirty_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (parent_id) DO UPDATE SET
				version = g.version + excluded.version, total = g.total + excluded.total,
				queued = g.queued + excluded.queued, running = g.running + excluded.running,
				succeeded = g.succeeded + excluded.succeeded, failed = g.failed + excluded.failed,
				canceled = g.canceled + excluded.canceled, weight_sum = g.weight_sum + excluded.weight_sum,
				done_wp = g.done_wp + excluded.done_wp, dirty_at = excluded.dirty_at`),
		owner: bind(`INSERT INTO ` + prefix + `project_owners AS p
			(project, owner, queued, running, succeeded, failed, canceled, last_activity_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (project, owner) DO UPDATE SET ` + addCounts),
		project: bind(`INSERT INTO ` + prefix + `projects AS p
			(project, queued, running, succeeded, failed, canceled, last_activity_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (project) DO UPDATE SET ` + addCounts),
	}
}

// Statements returns the three statements, for a store that prepares them
// once (SQLite's driver parses a statement on every unprepared Exec).
func (q TallySQL) Statements() []string { return []string{q.group, q.owner, q.project} }

// Exec runs one statement in the caller's transaction.
type Exec func(ctx context.Context, query string, args ...any) error

// Apply writes t with exec, marking each changed parent dirty now.
func (q TallySQL) Apply(ctx context.Context, exec Exec, t *Tally) error {
	now := time.Now().UnixMilli()
	for id, g := range t.Groups {
		c := g.Counts
		if err := exec(ctx, q.group, id, g.Changes, c.Total, c.Queued, c.Running,
			c.Succeeded, c.Failed, c.Canceled, g.WeightSum, g.DoneWP, now); err != nil {
			return fmt.Errorf("count the children of %s: %w", id, err)
		}
	}
	for k, d := range t.Owners {
		c := d.Counts
		if err := exec(ctx, q.owner, k.Project, k.Owner, c.Queued, c.Running,
			c.Succeeded, c.Failed, c.Canceled, d.LastActivity); err != nil {
			return fmt.Errorf("count the jobs of project %s: %w", k.Project, err)
		}
	}
	for p, d := range t.Projects {
		c := d.Counts
		if err := exec(ctx, q.project, p, c.Queued, c.Running,
			c.Succeeded, c.Failed, c.Canceled, d.LastActivity); err != nil {
			return fmt.Errorf("count the jobs of project %s: %w", p, err)
		}
	}
	return nil
}

// bindDollar turns ? placeholders into $1, $2… for PostgreSQL when dollar
// is set.
func bindDollar(q string, dollar bool) string {
	if !dollar {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
