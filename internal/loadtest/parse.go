package loadtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// frameKind is the type of a server frame.
type frameKind uint8

const (
	frameOther frameKind = iota
	frameUpdate
	frameReply
)

// frame is the little a client needs of a server frame.
type frame struct {
	kind frameKind
	// update
	seq    uint64
	sentAt int64 // unix nanos from a "t=…" message; 0 if none
	// reply
	id int64 // -1 if null or absent
	// seq is also a report reply's: the seq its report produced.
	errCode string
	errMsg  string
}

var (
	updatePrefix = []byte(`{"type":"update",`)
	replyPrefix  = []byte(`{"type":"reply","id":`)
	errorKey     = []byte(`"error":`)
	seqKey       = []byte(`"seq":`)
	stampKey     = []byte(`"message":"t=`)
)

// parseFrame reads a server frame. Updates, every frame but a handful, take
// a fast path that finds "seq" and the message's time stamp without
// decoding the snapshot: both keys can only appear as keys, because inside
// a JSON string every quote is escaped. Anything else, or an update in a
// shape the fast path does not recognize, is decoded into a tiny struct.
func parseFrame(b []byte) (frame, error) {
	if bytes.HasPrefix(b, updatePrefix) {
		if seq, ok := uintAfter(b, seqKey); ok {
			f := frame{kind: frameUpdate, seq: seq, id: -1}
			if i := bytes.Index(b, stampKey); i >= 0 {
				f.sentAt, _ = leadingInt(b[i+len(stampKey):])
			}
			return f, nil
		}
	}
	// A report's reply, {"type":"reply","id":N,"seq":S}: one per report
	// of the ingest scenario's WebSocket publishers.
	if rest, ok := bytes.CutPrefix(b, replyPrefix); ok && !bytes.Contains(rest, errorKey) {
		if id, err := leadingInt(rest); err == nil {
			if seq, ok := uintAfter(rest, seqKey); ok {
				return frame{kind: frameReply, id: id, seq: seq}, nil
			}
		}
	}
	return decodeFrame(b)
}

// wireFrame is the part of a server frame the slow path decodes.
type wireFrame struct {
	Type  string  `json:"type"`
	ID    *int64  `json:"id"`
	Seq   *uint64 `json:"seq"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Job *struct {
		Seq     *uint64 `json:"seq"`
		Message string  `json:"message"`
	} `json:"job"`
}

func decodeFrame(b []byte) (frame, error) {
	var w wireFrame
	if err := json.Unmarshal(b, &w); err != nil {
		return frame{}, fmt.Errorf("server frame is not JSON: %w: %.120q", err, b)
	}
	f := frame{id: -1}
	switch w.Type {
	case "update":
		if w.Job == nil || w.Job.Seq == nil {
			return frame{}, fmt.Errorf("update frame without job.seq: %.200q", b)
		}
		f.kind, f.seq = frameUpdate, *w.Job.Seq
		if rest, ok := strings.CutPrefix(w.Job.Message, "t="); ok {
			f.sentAt, _ = leadingInt([]byte(rest))
		}
	case "reply":
		f.kind = frameReply
		if w.ID != nil {
			f.id = *w.ID
		}
		if w.Seq != nil {
			f.seq = *w.Seq
		}
		if w.Error != nil {
			f.errCode, f.errMsg = w.Error.Code, w.Error.Message
			if f.errCode == "" {
				f.errCode = "unknown"
			}
		}
	}
	return f, nil
}

// uintAfter parses the unsigned integer that follows the first key in b.
func uintAfter(b, key []byte) (uint64, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(b[i+len(key):], " \t\r\n")
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n == 0 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(rest[:n]), 10, 64)
	return v, err == nil
}

var errNoDigits = errors.New("no digits")

// leadingInt parses the decimal digits at the start of b.
func leadingInt(b []byte) (int64, error) {
	n := 0
	for n < len(b) && n < 19 && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	if n == 0 {
		return 0, errNoDigits
	}
	return strconv.ParseInt(string(b[:n]), 10, 64)
}

// appendStamp appends the message that carries a report's send time.
func appendStamp(b []byte, unixNanos int64) []byte {
	b = append(b, "t="...)
	return strconv.AppendInt(b, unixNanos, 10)
}
