package progress

import "fmt"

// Error codes a rejected report or job definition carries. They are part of
// the HTTP and WebSocket contract: clients match on them, so never rename one.
const (
	CodeInvalidProgress = "invalid_progress" // progress NaN, ±Inf or outside [0, 1]
	CodeInvalidCount    = "invalid_count"    // current/total NaN, ±Inf, negative, or current > total
	CodeUnknownStage    = "unknown_stage"    // a stage the job does not have
	CodeInvalidState    = "invalid_state"    // an unknown state, or one a report may not set
	CodeJobFinished     = "job_finished"     // the job is terminal: nothing changes any more
	CodeInvalidJob      = "invalid_job"      // a job definition that cannot be created
	CodeInvalidMessage  = "invalid_message"  // message or error text too long or not UTF-8
)

// Error is a rejection by the model: Code says which rule was broken (one of
// the Code constants) and Message says what to send instead. A rejected
// report changes nothing.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Is lets errors.Is match any *Error with the same code, so callers can
// compare against ErrJobFinished without caring about the message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// ErrJobFinished is returned for any change to a job in a terminal state.
var ErrJobFinished = &Error{Code: CodeJobFinished, Message: "the job has finished; a terminal state is final"}

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
