package store

import (
	"strings"

	"github.com/progressd/progressd/internal/progress"
)

// LogSQL is the SQL of the log table (job_id, n, t, stream, stage, text;
// primary key job_id, n), written once for both databases as SQL is. Times
// are Unix milliseconds.
type LogSQL struct {
	// Logs is the log table, Jobs the jobs table.
	Logs, Jobs  string
	Placeholder func(n int) string
}

// LogInsertRows is the most lines one Insert statement adds: one
// statement per line was most of the cost of writing lines (SQLite: ~11
// µs a line, BenchmarkLogFanIn's profile; PostgreSQL: a round trip a
// line).
const LogInsertRows = 100

// Insert adds rows lines, each unless it is there already (a retried
// batch) or its job is gone (deleted meanwhile): arguments job, n, t,
// stream, stage, text of each line in turn.
func (d LogSQL) Insert(rows int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO " + d.Logs + " (job_id, n, t, stream, stage, text)" +
		" SELECT column1, column2, column3, column4, column5, column6 FROM (VALUES ")
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		// The casts type the parameters for PostgreSQL, which cannot
		// infer them in VALUES.
		p := func(i int) string { return d.Placeholder(6*r + i) }
		b.WriteString("(CAST(" + p(1) + " AS TEXT), CAST(" + p(2) + " AS BIGINT), CAST(" + p(3) + " AS BIGINT), CAST(" +
			p(4) + " AS TEXT), CAST(" + p(5) + " AS TEXT), CAST(" + p(6) + " AS TEXT))")
	}
	b.WriteString(") AS v WHERE EXISTS (SELECT 1 FROM " + d.Jobs + " WHERE id = v.column1) ON CONFLICT DO NOTHING")
	return b.String()
}

// Trim drops a job's lines up to an n: arguments job, n.
func (d LogSQL) Trim() string {
	return "DELETE FROM " + d.Logs + " WHERE job_id = " + d.Placeholder(1) + " AND n <= " + d.Placeholder(2)
}

// Bounds reads a job's first and last kept n (0, 0 without lines):
// arguments job, job. Each end is a subquery of its own: SQLite answers
// a lone min() or max() from the index's end, but min(n), max(n) in one
// SELECT visited every kept line of the job, for every page read (57 %
// of BenchmarkLogFlood's CPU with --log-lines 200,000, a follower
// reading the finished job's lines from the database).
func (d LogSQL) Bounds() string {
	end := func(agg, p string) string {
		return "coalesce((SELECT " + agg + "(n) FROM " + d.Logs + " WHERE job_id = " + p + "), 0)"
	}
	return "SELECT " + end("min", d.Placeholder(1)) + ", " + end("max", d.Placeholder(2))
}

// Page reads lines in order: arguments job, after (exclusive), limit.
// Rows are (n, t, stream, stage, text).
func (d LogSQL) Page() string {
	return "SELECT n, t, stream, stage, text FROM " + d.Logs + " WHERE job_id = " + d.Placeholder(1) +
		" AND n > " + d.Placeholder(2) + " ORDER BY n LIMIT " + d.Placeholder(3)
}

// LogInserts calls insert with the arguments of Insert(rows) for the
// lines of batch, LogInsertRows at a time, and trim with those of Trim
// for each job whose newest line leaves more than keep behind it; both
// stores run it inside one transaction.
func LogInserts(batch []progress.JobLogs, keep int, insert func(rows int, args []any) error, trim func(args ...any) error) error {
	args := make([]any, 0, 6*LogInsertRows)
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		err := insert(len(args)/6, args)
		args = args[:0]
		return err
	}
	for _, j := range batch {
		for _, l := range j.Lines {
			args = append(args, j.JobID, l.N, l.T.UnixMilli(), l.Stream, l.Stage, l.Text)
			if len(args) == cap(args) {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	for _, j := range batch {
		var top int64
		for _, l := range j.Lines {
			top = max(top, l.N)
		}
		if keep > 0 && top > int64(keep) {
			if err := trim(j.JobID, top-int64(keep)); err != nil {
				return err
			}
		}
	}
	return nil
}

// LogWindow says where a read of a job whose first kept line is first
// starts: the n to read after, and whether lines after after were
// dropped. after < 0 reads from the first kept line, never truncated.
func LogWindow(first, after int64) (from int64, truncated bool) {
	switch {
	case after < 0:
		return 0, false
	case first > 0 && after+1 < first:
		return first - 1, true
	}
	return after, false
}
