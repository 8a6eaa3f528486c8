package store

import (
	"strconv"
	"strings"

	"github.com/progressd/progressd/internal/progress"
)

// SQL builds the reads every SQL store runs, so that a filter or the paging
// rule is written once and SQLite and PostgreSQL cannot answer the same
// Query differently. What differs between them is a parameter: the table
// name and how a placeholder is spelled. A new filter of progress.Query is
// one more clause in List, and storetest checks it on both databases.
type SQL struct {
	// Table is the jobs table: (id, project, owner, state, snapshot, …).
	Table string
	// Tags is the tags table: (tag, job_id, owner).
	Tags string
	// Placeholder returns the n-th placeholder (n from 1): QuestionMark or
	// DollarNumber.
	Placeholder func(n int) string
}

// QuestionMark spells every placeholder "?" (SQLite, MySQL).
func QuestionMark(int) string { return "?" }

// DollarNumber spells the n-th placeholder "$n" (PostgreSQL).
func DollarNumber(n int) string { return "$" + strconv.Itoa(n) }

// Get returns the SELECT of one job's snapshot; its one argument is the id.
func (d SQL) Get() string {
	return "SELECT snapshot FROM " + d.Table + " WHERE id = " + d.Placeholder(1)
}

// List returns the SELECT of one page of q, newest first, and its
// arguments: rows of (id, snapshot) for ReadPage, one more than the page
// holds so that ReadPage knows whether a next page exists. Only
// placeholders carry values.
func (d SQL) List(q progress.Query) (string, []any) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return d.Placeholder(len(args))
	}
	if q.Project != "" {
		where = append(where, "project = "+arg(q.Project))
	}
	if q.Owner != "" {
		where = append(where, "owner = "+arg(q.Owner))
	}
	if len(q.States) > 0 {
		in := make([]string, len(q.States))
		for i, st := range q.States {
			in[i] = arg(string(st))
		}
		where = append(where, "state IN ("+strings.Join(in, ", ")+")")
	}
	if q.Parent != "" {
		where = append(where, "parent_id = "+arg(q.Parent))
	}
	if q.Tag != "" {
		where = append(where, "id IN (SELECT job_id FROM "+d.Tags+" WHERE tag = "+arg(q.Tag)+")")
	}
	if q.Cursor != "" {
		where = append(where, "id < "+arg(q.Cursor))
	}
	query := "SELECT id, snapshot FROM " + d.Table
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id DESC LIMIT " + arg(q.PageSize()+1)
	return query, args
}
