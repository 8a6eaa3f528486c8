package progress

import (
	"encoding/json"
	"slices"
)

// Stage is one step of a job with its share of the overall progress.
type Stage struct {
	Name     string  `json:"name"`
	Weight   float64 `json:"weight"`
	State    State   `json:"state"`
	Progress float64 `json:"progress"`
	// Children marks the stage of a parent whose fraction is the weighted
	// mean of its children's progress (SPEC "Groups").
	Children bool `json:"children,omitempty"`
}

// Snapshot is the whole state of one job at one seq: the one message shape
// that is stored, published and delivered. Every delivery carries a whole
// snapshot, so a client that missed some is whole again with the next.
//
// A Snapshot is a value: Apply never modifies its input, and the slices and
// maps of a snapshot it returns are never shared with the previous one.
//
// Every field of the contract is always on the wire, so clients see one
// shape: an absent value is null, "" (pipeline, stage, message) or []
// (stages). Params and the fields of part two (name, tags, the group
// fields) are present only when the job has them, so old clients see the
// shape they know.
type Snapshot struct {
	JobID      string            `json:"job_id"`
	Project    string            `json:"project"`
	Owner      string            `json:"owner"`
	Pipeline   string            `json:"pipeline"`
	Params     map[string]string `json:"params,omitempty"`
	State      State             `json:"state"`
	Progress   float64           `json:"progress"`
	Stage      string            `json:"stage"`
	Stages     []Stage           `json:"stages"`
	Current    *float64          `json:"current"`
	Total      *float64          `json:"total"`
	Message    string            `json:"message"`
	ETASeconds *float64          `json:"eta_seconds"`
	Seq        uint64            `json:"seq"`
	CreatedAt  Time              `json:"created_at"`
	StartedAt  *Time             `json:"started_at" nullable:"true"`
	UpdatedAt  Time              `json:"updated_at"`
	FinishedAt *Time             `json:"finished_at" nullable:"true"`
	Error      *string           `json:"error"`

	// Name is the job's title, shown instead of a generic label.
	Name string `json:"name,omitempty"`
	// Tags never change after create.
	Tags []string `json:"tags,omitempty"`
	// ParentID and RootID are set on a child: its parent, and the top of
	// its tree (the parent itself for a child of a root).
	ParentID string `json:"parent_id,omitempty"`
	RootID   string `json:"root_id,omitempty"`
	// Weight is a child's share of its parent's progress (> 0; 0 on a job
	// without a parent).
	Weight float64 `json:"weight,omitempty"`
	// ExpectedChildren is the number of children a parent announced.
	ExpectedChildren int `json:"expected_children,omitempty"`
	// Children counts a parent's direct children by state; nil on a job
	// that has none and announced none.
	Children *Children `json:"children,omitempty"`
	// TraceID is the W3C trace id of the latest create or report that
	// sent a traceparent header (32 lowercase hex digits).
	TraceID string `json:"trace_id,omitempty"`
	// Metadata is the job's merged metadata object (create and reports),
	// Result the object sent with succeeded; each encoded by encoding/json
	// and never changed in place.
	Metadata json.RawMessage `json:"metadata,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`

	// Attempt and MaxAttempts are a pipeline job's: which run of its
	// stages this is (from 1) and how many it may have. RetryAt is set
	// while the job waits for its next attempt; Error then holds the
	// failure that caused the retry, and both clear when it starts.
	Attempt     int   `json:"attempt,omitempty" doc:"A pipeline job's attempt, from 1."`
	MaxAttempts int   `json:"max_attempts,omitempty" doc:"How many attempts a pipeline job may take (its pipeline's max_attempts)."`
	RetryAt     *Time `json:"retry_at,omitempty" doc:"Set while a pipeline job waits for its next attempt; error then holds the failure that caused the retry."`
	// StallAfter and AbandonAfter are the job's own limits, in seconds
	// (create's stall_after_seconds and abandon_after_seconds; see
	// lifecycle.go).
	StallAfter   float64 `json:"stall_after_seconds,omitempty" doc:"The job's stall limit, as created."`
	AbandonAfter float64 `json:"abandon_after_seconds,omitempty" doc:"The job's own abandon limit, as created (else the server's --abandon-after)."`
	// Stalled is set on a running job that has had no report of its own
	// for StallAfter, until its next report.
	Stalled bool `json:"stalled,omitempty" doc:"A running job that has had no report of its own for stall_after_seconds; cleared by its next report."`
	// ReportedAt is when the job last reported (or was created), present
	// only when that is not UpdatedAt: after a parent changed because of
	// its children. LastReport reads it.
	ReportedAt *Time `json:"reported_at,omitempty" doc:"When the job last reported, when that is not updated_at (a parent changed by its children, a job abandoned)."`

	// Agg is a parent's aggregation state, beside Rate and for the same
	// reason: not on the wire, carried by stores that share snapshots.
	Agg Aggregate `json:"-"`

	// Rate is the ETA estimator's state. It is not part of the wire shape;
	// stores that share snapshots between nodes carry it beside the snapshot.
	Rate Rate `json:"-"`
}

// Clone returns a deep copy of s: the copy shares no slice, map or pointer
// with s, so either may be changed without touching the other.
func (s Snapshot) Clone() Snapshot {
	c := s
	if s.Params != nil {
		c.Params = make(map[string]string, len(s.Params))
		for k, v := range s.Params {
			c.Params[k] = v
		}
	}
	c.Stages = make([]Stage, len(s.Stages))
	copy(c.Stages, s.Stages)
	c.Current = clonePtr(s.Current)
	c.Total = clonePtr(s.Total)
	c.ETASeconds = clonePtr(s.ETASeconds)
	c.StartedAt = clonePtr(s.StartedAt)
	c.FinishedAt = clonePtr(s.FinishedAt)
	c.Error = clonePtr(s.Error)
	c.Tags = slices.Clone(s.Tags)
	c.Children = clonePtr(s.Children)
	c.RetryAt = clonePtr(s.RetryAt)
	c.ReportedAt = clonePtr(s.ReportedAt)
	return c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// stageIndex returns the index of the stage named name, or -1.
func (s *Snapshot) stageIndex(name string) int {
	for i := range s.Stages {
		if s.Stages[i].Name == name {
			return i
		}
	}
	return -1
}
