// Package client is a Go client for a progressd server: the HTTP API
// (create, get, list, report, cancel) and following a job live over the
// WebSocket endpoint (Watch). It is what the progressd CLI uses, and what a
// Go worker can use to report progress.
//
// A Client is safe for concurrent use. Every method takes a context; Watch
// runs until the job finishes or its context ends, reconnecting by itself
// when the connection drops.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/progressd/progressd/internal/progress"
)

// The job model's types, so code outside this module can name them.
type (
	Snapshot  = progress.Snapshot
	Report    = progress.Report
	State     = progress.State
	Stage     = progress.Stage
	StageSpec = progress.StageSpec
	Time      = progress.Time
	// Children counts a parent's direct children by state.
	Children = progress.Children
	// ProjectSummary is one entry of the project list.
	ProjectSummary = progress.ProjectSummary
	// JobCounts counts a project's jobs by state.
	JobCounts = progress.JobCounts
	// LogLine is one kept log line of a job; LogPage a read of them.
	LogLine = progress.LogLine
	LogPage = progress.LogPage
)

// Job states.
const (
	Queued    = progress.Queued
	Running   = progress.Running
	Succeeded = progress.Succeeded
	Failed    = progress.Failed
	Canceled  = progress.Canceled
)

// DefaultServer is where a progressd server listens by default.
const DefaultServer = "http://127.0.0.1:8000"

// Error is an error the server answered with. Code is the API's stable
// error code (not_found, invalid_progress, job_finished, unauthorized…).
type Error struct {
	Status  int // HTTP status; 0 for a WebSocket reply or one report of a batch
	Code    string
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// Client talks to one progressd server.
type Client struct {
	base  *url.URL
	token string
	// HTTP is the client requests go through; New sets one with a 30 s
	// timeout (Watch's WebSocket is not bound by it).
	HTTP *http.Client
}

// New returns a client for the server at base URL server (DefaultServer if
// empty) that authenticates with token (none if empty).
func New(server, token string) (*Client, error) {
	if server == "" {
		server = DefaultServer
	}
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server %q must be a URL such as %s", server, DefaultServer)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Client{base: u, token: token, HTTP: &http.Client{Timeout: 30 * time.Second}}, nil
}

// Server returns the server's base URL.
func (c *Client) Server() string { return c.base.String() }

// CreateRequest is a new job: a pipeline the server runs (with its params),
// or stages an external worker reports on.
//
// A child job names its parent (ParentID; it then takes the parent's
// project when Project is empty) and its share of the parent's progress
// (Weight, default 1); a parent may announce how many children are coming
// (ExpectedChildren). Owner creates the job for another user: admin
// tokens only.
type CreateRequest struct {
	Project  string            `json:"project,omitempty"`
	Pipeline string            `json:"pipeline,omitempty"`
	Params   map[string]string `json:"params,omitempty"`
	Stages   []StageSpec       `json:"stages,omitempty"`

	Name             string   `json:"name,omitempty"`
	Tags             []string `json:"tags,omitempty"`
	ParentID         string   `json:"parent_id,omitempty"`
	Weight           *float64 `json:"weight,omitempty"`
	ExpectedChildren int      `json:"expected_children,omitempty"`
	Owner            string   `json:"owner,omitempty"`

	// StallAfterSeconds (> 0) marks the job "stalled" while it is running
	// and has not reported for that long; AbandonAfterSeconds (> 0) fails
	// it when it has not reported for that long, in place of the server's
	// --abandon-after. 0 sends neither.
	StallAfterSeconds   float64 `json:"stall_after_seconds,omitempty"`
	AbandonAfterSeconds float64 `json:"abandon_after_seconds,omitempty"`

	// IdempotencyKey is sent as the Idempotency-Key header: the server
	// makes one job per key and user, however often the create is sent
	// (within 24 h). Create picks a random one when it is empty; set it to
	// make a create safe to repeat across runs of your program too.
	IdempotencyKey string `json:"-"`
}

// createTries is how many times Create sends a create that got no answer.
const createTries = 3

// Create creates a job and returns its first snapshot. A create that got
// no answer — the connection failed, or the server answered 502, 503 or
// 504 — is sent again, twice at most, with the same Idempotency-Key, so
// the job is made (and its pipeline run) once.
func (c *Client) Create(ctx context.Context, req CreateRequest) (Snapshot, error) {
	if req.IdempotencyKey == "" {
		req.IdempotencyKey = uuid.NewString()
	}
	header := http.Header{"Idempotency-Key": {req.IdempotencyKey}}
	wait := 250 * time.Millisecond
	for try := 1; ; try++ {
		var s Snapshot
		err := c.doWith(ctx, http.MethodPost, "/api/v1/jobs", nil, header, req, &s)
		if err == nil || try == createTries || !unanswered(err) {
			return s, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return s, err
		case <-t.C:
		}
		wait *= 4
	}
}

// unanswered reports whether err says the request may not have reached the
// server, or its answer was lost: a failed connection, or a gateway or
// server that could not serve it now.
func unanswered(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Status == http.StatusBadGateway || e.Status == http.StatusServiceUnavailable || e.Status == http.StatusGatewayTimeout
	}
	var ue *url.Error
	return errors.As(err, &ue) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// Get returns a job's latest snapshot.
func (c *Client) Get(ctx context.Context, id string) (Snapshot, error) {
	var s Snapshot
	err := c.do(ctx, http.MethodGet, "/api/v1/jobs/"+url.PathEscape(id), nil, nil, &s)
	return s, err
}

// Report sends a progress report and returns the snapshot it produced.
func (c *Client) Report(ctx context.Context, id string, r Report) (Snapshot, error) {
	var s Snapshot
	err := c.do(ctx, http.MethodPost, "/api/v1/jobs/"+url.PathEscape(id)+"/progress", nil, r, &s)
	return s, err
}

// Cancel cancels a job; a command it runs gets SIGTERM.
func (c *Client) Cancel(ctx context.Context, id string) (Snapshot, error) {
	var s Snapshot
	err := c.do(ctx, http.MethodPost, "/api/v1/jobs/"+url.PathEscape(id)+"/cancel", nil, nil, &s)
	return s, err
}

// Logs returns the job's kept log lines after line after (from the first
// kept one if after < 0), at most limit (the server's default if 0).
func (c *Client) Logs(ctx context.Context, id string, after int64, limit int) (LogPage, error) {
	q := url.Values{}
	if after >= 0 {
		q.Set("after", strconv.FormatInt(after, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var p LogPage
	err := c.do(ctx, http.MethodGet, "/api/v1/jobs/"+url.PathEscape(id)+"/logs", q, nil, &p)
	return p, err
}

// Delete deletes a finished job with its log lines (owner or admin). A
// job that has not finished is a 409 job_not_finished *Error: cancel it
// first.
func (c *Client) Delete(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/jobs/"+url.PathEscape(id), nil, nil, nil)
}

// ListOptions filter List. Zero values match everything.
type ListOptions struct {
	Project string
	States  []State
	Parent  string // only the direct children of this job
	Tag     string // only the jobs with this tag
	Limit   int    // page size; the server's default if 0
	Cursor  string // NextCursor of the previous page
}

// Page is one page of List, newest job first.
type Page struct {
	Jobs       []Snapshot `json:"jobs"`
	NextCursor *string    `json:"next_cursor"` // nil on the last page
}

// List returns a page of the jobs the caller may see.
func (c *Client) List(ctx context.Context, o ListOptions) (Page, error) {
	q := url.Values{}
	if o.Project != "" {
		q.Set("project", o.Project)
	}
	if len(o.States) > 0 {
		states := make([]string, len(o.States))
		for i, s := range o.States {
			states[i] = string(s)
		}
		q.Set("state", strings.Join(states, ","))
	}
	if o.Parent != "" {
		q.Set("parent", o.Parent)
	}
	if o.Tag != "" {
		q.Set("tag", o.Tag)
	}
	pageQuery(q, o.Limit, o.Cursor)
	var p Page
	err := c.do(ctx, http.MethodGet, "/api/v1/jobs", q, nil, &p)
	return p, err
}

// Children returns a page of the direct children of job parent.
func (c *Client) Children(ctx context.Context, parent string, limit int, cursor string) (Page, error) {
	return c.List(ctx, ListOptions{Parent: parent, Limit: limit, Cursor: cursor})
}

// ProjectPage is one page of Projects, most recent activity first.
type ProjectPage struct {
	Projects   []ProjectSummary `json:"projects"`
	NextCursor *string          `json:"next_cursor"` // nil on the last page
}

// Projects returns a page of the projects the caller has jobs in (an
// admin: all), with the jobs it may see counted by state.
func (c *Client) Projects(ctx context.Context, limit int, cursor string) (ProjectPage, error) {
	q := url.Values{}
	pageQuery(q, limit, cursor)
	var p ProjectPage
	err := c.do(ctx, http.MethodGet, "/api/v1/projects", q, nil, &p)
	return p, err
}

func pageQuery(q url.Values, limit int, cursor string) {
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
}

// maxResponseBytes bounds a response body; a page of 500 snapshots fits.
const maxResponseBytes = 64 << 20

func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	return c.doWith(ctx, method, path, q, nil, body, out)
}

// doWith is do with extra request headers.
func (c *Client) doWith(ctx context.Context, method, path string, q url.Values, header http.Header, body, out any) error {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w (is progressd running at %s?)", method, path, err, c.base)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		return decodeError(resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode response: %w", method, path, err)
		}
	}
	return nil
}

// decodeError reads the API's {"error": {"code", "message"}} body, or
// makes one from the status for a body that is not one (a proxy's page).
func decodeError(status int, body []byte) error {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Code != "" {
		return &Error{Status: status, Code: e.Error.Code, Message: e.Error.Message}
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return &Error{Status: status, Code: strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "_")), Message: msg}
}

// IsNotFound reports whether err is the server saying the job does not
// exist (or is not the caller's to see); a create naming such a parent
// (parent_not_found) is one too.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.Code == "not_found" || e.Status == http.StatusNotFound)
}
