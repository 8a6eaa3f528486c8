package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"

	"github.com/progressd/progressd/internal/jobs"
	"github.com/progressd/progressd/internal/progress"
)

// MaxLogBodyBytes bounds a POST .../logs body: 1 MiB of lines
// (maxLogBytes) plus room for the JSON around them.
const (
	MaxLogBodyBytes = maxLogBytes + 64<<10
	maxLogBytes     = 1 << 20
)

type appendLogsInput struct {
	ID      string `path:"id" doc:"The job id."`
	RawBody []byte
	Body    struct {
		Lines []string `json:"lines" doc:"Lines to keep, oldest first: at most 1,000, each valid UTF-8 without NUL bytes; longer than 4 KiB is cut to end with …."`
	}
}

type appendLogsOutput struct {
	Body struct {
		Last int64 `json:"last" doc:"The n of the last line kept."`
	}
}

type readLogsInput struct {
	ID    string `path:"id" doc:"The job id."`
	After string `query:"after" doc:"Return lines with n above this, a number ≥ 0 (default: from the first kept line)."`
	Limit int    `query:"limit" default:"1000" minimum:"1" maximum:"1000" doc:"At most this many lines."`
}

type readLogsOutput struct {
	Body progress.LogPage
}

func (a *API) registerLogs() {
	tags := []string{"logs"}
	huma.Register(a.huma, huma.Operation{
		OperationID: "append-logs", Method: http.MethodPost, Path: "/api/v1/jobs/{id}/logs",
		Summary: "Append log lines",
		Description: "Keeps the lines as the job's next log lines (stream \"log\"). 400 for more than 1,000 lines, invalid UTF-8 or a NUL byte " +
			"(nothing is kept), 413 for a body over 1 MiB, 409 once the job is terminal.",
		Tags: tags, Security: secured, MaxBodyBytes: MaxLogBodyBytes,
	}, a.appendLogs)
	huma.Register(a.huma, huma.Operation{
		OperationID: "read-logs", Method: http.MethodGet, Path: "/api/v1/jobs/{id}/logs",
		Summary: "Read a job's kept log lines",
		Description: "Lines after `after` (n above it), oldest first. `first` is the first line kept, `last` the newest line of the job; " +
			"`truncated` says lines after `after` were already dropped, so the page starts at `first`.",
		Tags: tags, Security: secured,
	}, a.readLogs)
}

func (a *API) appendLogs(ctx context.Context, in *appendLogsInput) (*appendLogsOutput, error) {
	size := 0
	for _, l := range in.Body.Lines {
		size += len(l)
	}
	if size > maxLogBytes {
		return nil, apiError(http.StatusRequestEntityTooLarge, "too_large",
			fmt.Sprintf("the lines hold %d bytes; send at most 1 MiB per request", size))
	}
	if err := checkLogBody(in.RawBody, in.Body.Lines); err != nil {
		return nil, a.fromService(ctx, err)
	}
	last, err := a.jobs.AppendLogs(ctx, in.ID, in.Body.Lines, jobs.LogSource{Stream: progress.StreamLog}, principal(ctx).CanWrite)
	if err != nil {
		return nil, a.fromService(ctx, err)
	}
	out := &appendLogsOutput{}
	out.Body.Last = last
	return out, nil
}

// checkLogBody refuses lines that are not text. encoding/json turns
// invalid UTF-8 into U+FFFD silently, so the raw body is checked too.
func checkLogBody(raw []byte, lines []string) error {
	if len(lines) > 0 && !utf8.Valid(raw) {
		return &progress.Error{Code: progress.CodeInvalidLog, Message: "the body is not valid UTF-8; send log lines as text"}
	}
	return progress.CheckLogLines(lines)
}

func (a *API) readLogs(ctx context.Context, in *readLogsInput) (*readLogsOutput, error) {
	after := int64(-1)
	if in.After != "" {
		n, err := strconv.ParseInt(in.After, 10, 64)
		if err != nil || n < 0 {
			return nil, apiError(http.StatusBadRequest, "bad_request",
				fmt.Sprintf("after=%q: give the n of the last line you have, a number ≥ 0, or leave it out to start at the first kept line", in.After))
		}
		after = n
	}
	if _, err := a.readable(ctx, in.ID, principal(ctx).CanSeeLogs); err != nil {
		return nil, err
	}
	p, err := a.jobs.Logs(ctx, in.ID, after, in.Limit)
	if err != nil {
		return nil, a.fromService(ctx, err)
	}
	return &readLogsOutput{Body: p}, nil
}
