package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/protocol"
)

// The operations a client may send (SPEC.md, "WebSocket protocol").
const (
	opAuth        = "auth"
	opSubscribe   = "subscribe"
	opUnsubscribe = "unsubscribe"
	opPing        = "ping"
	opReport      = "report"
)

// Error codes of replies and HTTP errors: the rows of package protocol's
// table, which the clients and the docs read too.
const (
	CodeBadRequest    = protocol.CodeBadRequest
	CodeUnauthorized  = protocol.CodeUnauthorized
	CodeForbidden     = protocol.CodeForbidden
	CodeNotFound      = protocol.CodeNotFound
	CodeLimitExceeded = protocol.CodeLimitExceeded
	CodeConflict      = protocol.CodeConflict
	CodeInternal      = protocol.CodeInternal
	// CodeUnavailable is only sent over HTTP, while the gateway shuts down.
	CodeUnavailable = protocol.CodeUnavailable
)

// protoError is a refusal sent to the client: a reply error on WebSocket,
// an HTTP error body on SSE.
type protoError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *protoError) Error() string { return e.Code + ": " + e.Message }

func errorf(code, format string, args ...any) *protoError {
	return &protoError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// clientFrame is one decoded client frame. Unknown fields are ignored so
// newer clients can talk to older servers.
type clientFrame struct {
	Op      string
	ID      json.RawMessage // echoed verbatim in the reply; a JSON number or null
	Token   string
	Channel string
	// ClientID names the page or tab, to spot duplicate connections.
	ClientID string
	// After is, in a subscribe to logs:<id>, the last line the client
	// has: lines after it are sent (nil: all kept lines).
	After *int64
	// Report is the report of a report frame, decoded from the same
	// object: {"op":"report","id":N,"job_id":…,…report…}.
	Report progress.JobReport
}

// wireFrame is the JSON shape of clientFrame.
type wireFrame struct {
	Op       string          `json:"op"`
	ID       json.RawMessage `json:"id"`
	Token    string          `json:"token"`
	Channel  string          `json:"channel"`
	ClientID string          `json:"client_id"`
	After    *int64          `json:"after"`
}

// reportFrame is the JSON shape of a report frame.
type reportFrame struct {
	Op string          `json:"op"`
	ID json.RawMessage `json:"id"`
	progress.JobReport
}

// nullID is the id of a reply to a frame whose id could not be read.
var nullID = json.RawMessage("null")

// decodeFrame parses a client frame. On error it still returns the id it
// could read (or null), so the error reply can name the request.
func decodeFrame(data []byte) (clientFrame, *protoError) {
	// A report frame in its common form is read by hand, once (workers
	// stream thousands a second); anything else by encoding/json below,
	// which also words the errors.
	if id, r, ok := progress.DecodeReportFrame(data); ok && isJSONNumber(id) && r.JobID != "" {
		return clientFrame{Op: opReport, ID: bytes.Clone(id), Report: r}, nil
	}
	var w wireFrame
	if err := json.Unmarshal(data, &w); err != nil {
		return clientFrame{ID: nullID}, errorf(CodeBadRequest, "a frame must be one JSON object {\"op\", \"id\", ...}: %v", err)
	}
	f := clientFrame{Op: w.Op, ID: w.ID, Token: w.Token, Channel: w.Channel, ClientID: w.ClientID, After: w.After}
	if len(f.ID) == 0 || bytes.Equal(f.ID, nullID) {
		f.ID = nullID
	} else if !isJSONNumber(f.ID) {
		f.ID = nullID
		return f, errorf(CodeBadRequest, "\"id\" must be a number")
	}
	switch f.Op {
	case opAuth, opSubscribe, opUnsubscribe, opPing:
	case opReport:
		// A second pass over the frame, for report frames only: the
		// report's fields are those of POST /api/v1/jobs/{id}/progress,
		// and as there, a field it does not know is refused.
		var r reportFrame
		d := json.NewDecoder(bytes.NewReader(data))
		d.DisallowUnknownFields()
		if err := d.Decode(&r); err != nil {
			return f, errorf(CodeBadRequest, "a report frame is {\"op\":\"report\",\"id\":N,\"job_id\":…} with the fields of a progress report: %v", err)
		}
		f.Report = r.JobReport
		if f.Report.JobID == "" {
			return f, errorf(CodeBadRequest, "the report frame has no \"job_id\"")
		}
	case "":
		return f, errorf(CodeBadRequest, "the frame has no \"op\"; use auth, subscribe, unsubscribe, ping or report")
	default:
		return f, errorf(CodeBadRequest, "unknown op %q; use auth, subscribe, unsubscribe, ping or report", truncate(f.Op, 64))
	}
	if len(f.ClientID) > 128 {
		return f, errorf(CodeBadRequest, "\"client_id\" is longer than 128 bytes")
	}
	return f, nil
}

// isJSONNumber reports whether b is a JSON number literal, so it can be
// echoed into a reply as is.
func isJSONNumber(b []byte) bool {
	if len(b) == 0 || len(b) > 32 {
		return false
	}
	_, err := strconv.ParseFloat(string(b), 64)
	return err == nil && (b[0] == '-' || b[0] >= '0' && b[0] <= '9')
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// encodeReply returns the reply frame to request id; perr nil is success.
func encodeReply(id json.RawMessage, perr *protoError) []byte {
	return encodeReplySeq(id, 0, perr)
}

// encodeReplySeq is encodeReply with the seq of the snapshot a report
// produced (0: none).
func encodeReplySeq(id json.RawMessage, seq uint64, perr *protoError) []byte {
	if len(id) == 0 {
		id = nullID
	}
	b := make([]byte, 0, 48+len(id))
	b = append(b, `{"type":"reply","id":`...)
	b = append(b, id...)
	if seq > 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, seq, 10)
	}
	if perr != nil {
		e, _ := json.Marshal(perr) // two strings: cannot fail
		b = append(b, `,"error":`...)
		b = append(b, e...)
	}
	return append(b, '}')
}

// encodeChannelError returns the frame that tells a client the server
// ended its subscription to ch: {"type":"error","channel":ch,"error":
// {"code","message"}}. It answers no request, so it has no id; a client
// treats it as it treats a refused subscribe of ch.
func encodeChannelError(ch string, perr *protoError) []byte {
	chJSON, _ := json.Marshal(ch) // a string: cannot fail
	e, _ := json.Marshal(perr)    // two strings: cannot fail
	b := make([]byte, 0, 48+len(chJSON)+len(e))
	b = append(b, `{"type":"error","channel":`...)
	b = append(b, chJSON...)
	b = append(b, `,"error":`...)
	b = append(b, e...)
	return append(b, '}')
}

// updatePrefix starts every update frame. The SSE multi-channel stream
// sends the same frame without it: {"channel":…,"job":…}.
const updatePrefix = `{"type":"update",`

// message is one frame ready to send, shared read-only by every
// subscriber it is queued for: an update is encoded once per channel, not
// once per connection.
type message struct {
	// frame is the whole WebSocket text frame.
	frame []byte
	// jobAt is where the snapshot JSON starts in frame (it ends before the
	// final '}'); 0 for a reply.
	jobAt int
	// seq is the snapshot's seq; 0 for a reply.
	seq uint64
	// owner is the job's owner, so that a queue can drop what its
	// connection may no longer see (queue.dropUnseen).
	owner string
	// log is set for the messages of a logs: channel (its name): a mark
	// (seq = the job's newest line, logJob the job) until the writer
	// expands it into frames (logFrame set), see logs.go.
	log      string
	logJob   string
	logFrame bool
	// urgent says the write spacing must not hold it back: a state
	// change (a job queued, started or finished), which a viewer must
	// see at once (see Config.MinWriteInterval).
	urgent bool
}

// newUpdate encodes {"type":"update","channel":ch,"job":data} once; data
// is snap encoded.
func newUpdate(ch string, snap *progress.Snapshot, data []byte) *message {
	chJSON, _ := json.Marshal(ch) // a string: cannot fail
	b := make([]byte, 0, len(updatePrefix)+len(`"channel":,"job":}`)+len(chJSON)+len(data))
	b = append(b, updatePrefix...)
	b = append(b, `"channel":`...)
	b = append(b, chJSON...)
	b = append(b, `,"job":`...)
	at := len(b)
	b = append(b, data...)
	b = append(b, '}')
	return &message{frame: b, jobAt: at, seq: snap.Seq, owner: snap.Owner, urgent: stateChange(snap)}
}

// stateChange reports whether snap is the snapshot of a state change: a
// job just created (queued), its first running snapshot (the one that
// started it), or its terminal one.
func stateChange(snap *progress.Snapshot) bool {
	switch {
	case snap.State == progress.Queued || snap.State.Terminal():
		return true
	case snap.State == progress.Running:
		return snap.StartedAt != nil && snap.StartedAt.Equal(snap.UpdatedAt.Time)
	}
	return false
}

// job returns the snapshot JSON of an update.
func (m *message) job() []byte { return m.frame[m.jobAt : len(m.frame)-1] }
