package progress

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Log line limits from the contract (SPEC part two, "Log lines").
const (
	// MaxLogLineBytes bounds one kept line: longer text is cut on a
	// character boundary and ends with "…", within this many bytes.
	MaxLogLineBytes = 4096
	// MaxLogLinesPerRequest bounds the lines of one POST .../logs or one
	// report's "log".
	MaxLogLinesPerRequest = 1000
	// DefaultLogLines is how many of a job's most recent lines are kept
	// when the server is not told otherwise (--log-lines).
	DefaultLogLines = 1000
)

// Log line streams: where a line came from.
const (
	StreamStdout = "stdout" // a pipeline stage's stdout line that was not progress
	StreamStderr = "stderr" // a pipeline stage's stderr line
	StreamLog    = "log"    // sent by a worker: POST .../logs or "log" in a report
)

// CodeInvalidLog rejects log lines that are not text: invalid UTF-8 or a
// NUL byte, or too many of them at once.
const CodeInvalidLog = "invalid_log"

// LogLine is one kept line of a job's output. N counts the job's lines
// from 1 with no gaps, across nodes; a line's N never changes.
type LogLine struct {
	N      int64  `json:"n"`
	T      Time   `json:"t"`
	Stream string `json:"stream"`
	Stage  string `json:"stage,omitempty"`
	Text   string `json:"text"`
}

// AppendJSON appends l as encoding/json would write it (HTML characters
// not escaped), without its reflection: log frames encode every line for
// every subscriber, and json.Marshal was the most of that.
func (l *LogLine) AppendJSON(b []byte) []byte {
	b = append(b, `{"n":`...)
	b = strconv.AppendInt(b, l.N, 10)
	b = append(b, `,"t":`...)
	b = appendTime(b, &l.T)
	b = append(b, `,"stream":`...)
	b = appendString(b, l.Stream)
	if l.Stage != "" {
		b = append(b, `,"stage":`...)
		b = appendString(b, l.Stage)
	}
	b = append(b, `,"text":`...)
	b = appendString(b, l.Text)
	return append(b, '}')
}

// LogPage is a read of a job's kept lines: Lines (ascending n) after the
// asked-for line, First the oldest line still kept (0 when none is), Last
// the job's newest line (0 when it has none). Truncated says lines after
// the asked-for one were already dropped, so Lines starts at First.
type LogPage struct {
	Lines     []LogLine `json:"lines"`
	First     int64     `json:"first"`
	Last      int64     `json:"last"`
	Truncated bool      `json:"truncated,omitempty"`
}

// JobLogs are lines of one job, as the durable store takes them.
type JobLogs struct {
	JobID string
	Lines []LogLine
}

// CutLogText returns s as a kept line's text: at most MaxLogLineBytes,
// cut on a character boundary to end with "…" when it was longer. Invalid
// UTF-8 (from a command's output; the API refuses it) becomes U+FFFD and
// NUL bytes are dropped, so a kept line is always valid text.
func CutLogText(s string) string {
	if len(s) > 4*MaxLogLineBytes {
		s = s[:4*MaxLogLineBytes] // bound the work on huge input
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if len(s) <= MaxLogLineBytes {
		return s
	}
	const ellipsis = "…"
	cut := MaxLogLineBytes - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

// CheckLogLines validates lines a worker sent (POST .../logs or a report's
// "log"): at most MaxLogLinesPerRequest, each valid UTF-8 without NUL
// bytes. Over-long lines are not an error: they are cut when kept.
func CheckLogLines(lines []string) error {
	if len(lines) > MaxLogLinesPerRequest {
		return errorf(CodeInvalidLog, "%d lines in one request; send at most %d at a time", len(lines), MaxLogLinesPerRequest)
	}
	for i, l := range lines {
		if !utf8.ValidString(l) {
			return errorf(CodeInvalidLog, "line %d is not valid UTF-8; send text", i+1)
		}
		if strings.IndexByte(l, 0) >= 0 {
			return errorf(CodeInvalidLog, "line %d holds a NUL byte; send text", i+1)
		}
	}
	return nil
}
