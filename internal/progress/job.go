package progress

import (
	"encoding/json"
	"math"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"
)

// StageSpec declares one stage of a new job.
type StageSpec struct {
	Name   string   `json:"name"`
	Weight *float64 `json:"weight,omitempty"` // > 0; nil means 1
	// Children marks the stage whose fraction is the mean of the job's
	// children's progress.
	Children bool `json:"children,omitempty"`
}

// NewJob is everything needed to create a job. ID and Owner are set by the
// caller (the server), never taken from a client.
type NewJob struct {
	ID       string
	Project  string
	Owner    string
	Pipeline string
	Params   map[string]string
	Stages   []StageSpec

	Name             string
	Tags             []string
	ParentID         string   // the service checks the parent first
	RootID           string   // the parent's root, or the parent itself
	Weight           *float64 // a child's share of its parent; nil means 1
	ExpectedChildren int
	// Metadata is the job's first metadata: a JSON object (nil: none).
	Metadata json.RawMessage
	// StallAfter and AbandonAfter are create's stall_after_seconds and
	// abandon_after_seconds (nil: none; else > 0). MaxAttempts is a
	// pipeline job's (0: not a pipeline job's); see lifecycle.go.
	StallAfter   *float64
	AbandonAfter *float64
	MaxAttempts  int
}

// New validates j and returns its first snapshot: queued, progress 0, seq 1.
func New(j NewJob, now time.Time) (Snapshot, error) {
	if j.ID == "" || j.Owner == "" {
		return Snapshot{}, errorf(CodeInvalidJob, "a job needs an id and an owner")
	}
	if err := CheckName("project", j.Project); err != nil {
		return Snapshot{}, err
	}
	if j.Pipeline != "" {
		if err := CheckName("pipeline", j.Pipeline); err != nil {
			return Snapshot{}, err
		}
	}
	if len(j.Params) > MaxParams {
		return Snapshot{}, errorf(CodeInvalidJob, "%d params; the limit is %d", len(j.Params), MaxParams)
	}
	for k, v := range j.Params {
		if err := CheckName("param name", k); err != nil {
			return Snapshot{}, err
		}
		if len(v) > MaxParamBytes || !utf8.ValidString(v) {
			return Snapshot{}, errorf(CodeInvalidJob, "param %q must be valid UTF-8 of at most %d bytes", k, MaxParamBytes)
		}
	}
	if err := checkGroup(&j); err != nil {
		return Snapshot{}, err
	}
	if len(j.Stages) > MaxStages {
		return Snapshot{}, errorf(CodeInvalidJob, "%d stages; the limit is %d", len(j.Stages), MaxStages)
	}
	at := At(now)
	var meta json.RawMessage
	if given(j.Metadata) {
		var err error
		if meta, err = mergeMetadata(nil, j.Metadata); err != nil {
			return Snapshot{}, err
		}
	}
	s := Snapshot{
		Metadata:  meta,
		JobID:     j.ID,
		Project:   j.Project,
		Owner:     j.Owner,
		Pipeline:  j.Pipeline,
		State:     Queued,
		Stages:    make([]Stage, 0, len(j.Stages)),
		Seq:       1,
		CreatedAt: at,
		UpdatedAt: at,

		Name:             j.Name,
		Tags:             slices.Clone(j.Tags),
		ParentID:         j.ParentID,
		RootID:           j.RootID,
		ExpectedChildren: j.ExpectedChildren,
	}
	if j.ParentID != "" {
		s.Weight = 1
		if j.Weight != nil {
			s.Weight = *j.Weight
		}
	}
	if j.ExpectedChildren > 0 {
		s.Children = &Children{}
	}
	if err := checkLifecycle(&j, &s); err != nil {
		return Snapshot{}, err
	}
	if len(j.Params) > 0 {
		s.Params = make(map[string]string, len(j.Params))
		for k, v := range j.Params {
			s.Params[k] = v
		}
	}
	for _, st := range j.Stages {
		if err := CheckName("stage name", st.Name); err != nil {
			return Snapshot{}, err
		}
		if s.stageIndex(st.Name) >= 0 {
			return Snapshot{}, errorf(CodeInvalidJob, "stage %q is declared twice; stage names must be unique", st.Name)
		}
		w := 1.0
		if st.Weight != nil {
			w = *st.Weight
			if math.IsNaN(w) || math.IsInf(w, 0) || w <= 0 {
				return Snapshot{}, errorf(CodeInvalidJob, "stage %q: weight must be a finite number > 0, got %v", st.Name, w)
			}
		}
		s.Stages = append(s.Stages, Stage{Name: st.Name, Weight: w, State: Queued, Children: st.Children})
	}
	return s, nil
}

// CheckName validates a project, pipeline, stage or param name: 1 to
// MaxNameBytes bytes of printable UTF-8 without spaces, so names can appear in
// channel names (project:NAME) and URLs unquoted.
func CheckName(what, name string) error {
	if name == "" {
		return errorf(CodeInvalidJob, "%s is required", what)
	}
	if len(name) > MaxNameBytes {
		return errorf(CodeInvalidJob, "%s is %d bytes; the limit is %d", what, len(name), MaxNameBytes)
	}
	if !utf8.ValidString(name) {
		return errorf(CodeInvalidJob, "%s is not valid UTF-8", what)
	}
	for _, r := range name {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return errorf(CodeInvalidJob, "%s %q may not contain spaces or control characters", what, name)
		}
	}
	return nil
}
