package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/coder/websocket"

	"github.com/progressd/progressd/internal/progress"
)

// AppendLogs keeps lines as job id's next log lines (at most 1,000 and
// 1 MiB per call) and returns the n of the last one.
func (c *Client) AppendLogs(ctx context.Context, id string, lines ...string) (int64, error) {
	var out struct {
		Last int64 `json:"last"`
	}
	err := c.do(ctx, http.MethodPost, "/api/v1/jobs/"+url.PathEscape(id)+"/logs", nil, map[string]any{"lines": lines}, &out)
	return out.Last, err
}

// FollowLogs calls fn with each of job id's log lines after after (< 0:
// every kept line), oldest first, then live as they come, until the job
// has ended and its last line was passed on; it returns the job's
// terminal snapshot. Lines come over the WebSocket channel logs:<id>;
// when the connection drops FollowLogs reconnects and resumes after the
// last line it passed on, so no line is passed on twice. A line whose n
// is more than one above the previous one means lines were dropped
// before this client read them (the job kept only its last --log-lines).
// fn runs on FollowLogs's goroutine.
func (c *Client) FollowLogs(ctx context.Context, id string, after int64, fn func(LogLine)) (Snapshot, error) {
	f := &logFollower{c: c, id: id, last: after, fn: fn}
	err := reconnecting(ctx, f.session)
	return f.end, err
}

type logFollower struct {
	c    *Client
	id   string
	last int64 // the n of the last line passed on (< 0: none yet)
	fn   func(LogLine)
	end  Snapshot
}

func (f *logFollower) pass(lines []LogLine) {
	for _, l := range lines {
		if l.N > f.last {
			f.last = l.N
			if f.fn != nil {
				f.fn(l)
			}
		}
	}
}

// drain passes on what is left once the job has ended: its lines are
// durable by then, so one read finds them all.
func (f *logFollower) drain(ctx context.Context) error {
	for {
		p, err := f.c.Logs(ctx, f.id, f.last, progress.MaxLogLinesPerRequest)
		if err != nil {
			return err
		}
		if len(p.Lines) == 0 {
			return nil
		}
		f.pass(p.Lines)
	}
}

func (f *logFollower) session(ctx context.Context, connected *bool) error {
	conn, status, err := f.c.dialWS(ctx, connected)
	if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
		return &finalError{&Error{Status: status, Code: "not_found", Message: "the server has no WebSocket endpoint to follow log lines on"}}
	}
	if err != nil {
		return err
	}
	defer conn.CloseNow()
	logs := map[string]any{"op": "subscribe", "id": 2, "channel": "logs:" + f.id}
	if f.last >= 0 {
		logs["after"] = f.last
	}
	for _, m := range []map[string]any{logs, {"op": "subscribe", "id": 1, "channel": "job:" + f.id}} {
		b, _ := json.Marshal(m)
		if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
	}
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return readError(err)
		}
		var fr struct {
			Type    string          `json:"type"`
			Channel string          `json:"channel"`
			Job     json.RawMessage `json:"job"`
			Lines   []LogLine       `json:"lines"`
			Error   *Error          `json:"error"`
		}
		if err := json.Unmarshal(data, &fr); err != nil {
			return fmt.Errorf("decode frame: %w", err)
		}
		switch {
		case fr.Type == "reply" && fr.Error != nil:
			return &finalError{fr.Error}
		case fr.Type == "log" && fr.Channel == "logs:"+f.id:
			f.pass(fr.Lines)
		case fr.Type == "update" && fr.Channel == "job:"+f.id:
			var s Snapshot
			if err := json.Unmarshal(fr.Job, &s); err != nil {
				return fmt.Errorf("decode snapshot: %w", err)
			}
			if s.State.Terminal() {
				f.end = s
				if err := f.drain(ctx); err != nil {
					return err
				}
				_ = conn.Close(websocket.StatusNormalClosure, "")
				return nil
			}
		}
	}
}
