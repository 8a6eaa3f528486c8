package broker

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/progressd/progressd/internal/progress"
)

// The message format between nodes, shared by every broker that crosses a
// process boundary (redisbroker; a NATS broker would send the same bytes).
// A message is a small binary header — format version, the publishing
// node's id, the job's seq, id, project and owner — followed by the
// snapshot's JSON exactly as the publisher encoded it (Update.Data); it is
// not encoded again. The header lets a node recognise its own messages
// without decoding them, and leaves room to route on job, project or owner.

// HeaderVersion is the first byte of every message; a node that reads
// another version drops the message (and says so) rather than misread it.
const HeaderVersion = 1

// LogNoticeVersion is the first byte of a log notice (Update.Log): the
// same header, with the job's newest log line n as its seq, and no data.
const LogNoticeVersion = 2

// Origin identifies the node that published a message.
type Origin [16]byte

// Header is what precedes the snapshot in a message.
type Header struct {
	Origin              Origin
	Seq                 uint64
	Job, Project, Owner string
	Log                 bool // a log notice (LogNoticeVersion)
}

// AppendMessage appends u as one message from origin: the header, then
// u.Data (encoded here only when the publisher left it empty).
func AppendMessage(b []byte, origin Origin, u *Update) ([]byte, error) {
	data := u.Data
	if len(data) == 0 && !u.Log {
		var err error
		if data, err = u.Snapshot.AppendJSON(nil); err != nil {
			return b, fmt.Errorf("encode job %s seq %d: %w", u.Snapshot.JobID, u.Snapshot.Seq, err)
		}
	}
	s := &u.Snapshot
	if u.Log {
		b = append(b, LogNoticeVersion)
		data = nil
	} else {
		b = append(b, HeaderVersion)
	}
	b = append(b, origin[:]...)
	b = binary.AppendUvarint(b, s.Seq)
	for _, f := range []string{s.JobID, s.Project, s.Owner} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return append(b, data...), nil
}

// MessageSize is an upper bound of the length of u's message, for
// allocating it at once.
func MessageSize(u *Update) int {
	s := &u.Snapshot
	return 1 + 16 + 4*binary.MaxVarintLen64 + len(s.JobID) + len(s.Project) + len(s.Owner) + max(len(u.Data), 512)
}

var errShort = errors.New("message ends inside its header")

// ParseHeader splits a message into its header and the snapshot JSON,
// without copying or decoding the JSON.
func ParseHeader(msg string) (h Header, data string, err error) {
	if len(msg) < 17 {
		return h, "", errShort
	}
	switch msg[0] {
	case HeaderVersion:
	case LogNoticeVersion:
		h.Log = true
	default:
		return h, "", fmt.Errorf("message format %d, this node reads %d and %d", msg[0], HeaderVersion, LogNoticeVersion)
	}
	copy(h.Origin[:], msg[1:17])
	rest := msg[17:]
	seq, n := uvarint(rest)
	if n <= 0 {
		return h, "", errShort
	}
	h.Seq, rest = seq, rest[n:]
	for _, f := range []*string{&h.Job, &h.Project, &h.Owner} {
		l, n := uvarint(rest)
		if n <= 0 || l > math.MaxInt32 || uint64(len(rest)-n) < l {
			return h, "", errShort
		}
		*f, rest = rest[n:n+int(l)], rest[n+int(l):]
	}
	return h, rest, nil
}

// DecodeUpdate makes the Update of a message's snapshot JSON: Data holds
// the bytes as they came, Snapshot is decoded from them once for every
// subscriber of the node.
func DecodeUpdate(h Header, data string) (Update, error) {
	if h.Log {
		return Update{Log: true, Snapshot: progress.Snapshot{JobID: h.Job, Project: h.Project, Owner: h.Owner, Seq: h.Seq}}, nil
	}
	u := Update{Data: []byte(data)}
	if err := json.Unmarshal(u.Data, &u.Snapshot); err != nil {
		return Update{}, fmt.Errorf("job %s seq %d: snapshot: %w", h.Job, h.Seq, err)
	}
	if u.Snapshot.Stages == nil {
		u.Snapshot.Stages = []progress.Stage{}
	}
	return u, nil
}

// uvarint is binary.Uvarint over a string, without copying it.
func uvarint(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		c := s[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				return 0, -1
			}
			return x | uint64(c)<<shift, i + 1
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	return 0, 0
}
