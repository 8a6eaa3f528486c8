package progress

// State is where a job is in its life: queued → running → one terminal state.
type State string

// The states of a job. Succeeded, Failed and Canceled are terminal: nothing
// about a job changes once it reaches one of them.
const (
	Queued    State = "queued"
	Running   State = "running"
	Succeeded State = "succeeded"
	Failed    State = "failed"
	Canceled  State = "canceled"
)

// States lists every state, in life-cycle order.
var States = []State{Queued, Running, Succeeded, Failed, Canceled}

// Valid reports whether s is one of the states above.
func (s State) Valid() bool {
	switch s {
	case Queued, Running, Succeeded, Failed, Canceled:
		return true
	}
	return false
}

// Terminal reports whether s is a final state.
func (s State) Terminal() bool {
	return s == Succeeded || s == Failed || s == Canceled
}
