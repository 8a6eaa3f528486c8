package progress

// Stage is one step of a job with its share of the overall progress.
type Stage struct {
	Name     string  `json:"name"`
	Weight   float64 `json:"weight"`
	State    State   `json:"state"`
	Progress float64 `json:"progress"`
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
// (stages). Params is the one extra, present only when the job has some.
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
	StartedAt  *Time             `json:"started_at"`
	UpdatedAt  Time              `json:"updated_at"`
	FinishedAt *Time             `json:"finished_at"`
	Error      *string           `json:"error"`

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
