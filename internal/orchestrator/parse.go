package orchestrator

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/progressd/progressd/internal/progress"
)

const (
	// MaxLineBytes bounds one line of a command's stdout. A longer line is
	// skipped whole (its progress could be anywhere in it), and at most
	// this much is ever buffered per stream.
	MaxLineBytes = 64 << 10
	// stderrLineBytes bounds one line of stderr kept for an error
	// message; the rest is cut.
	stderrLineBytes = 1024
	// stderrKeepBytes is how much of a stderr line is read: a little over
	// a log line's limit, so that progress.CutLogText sees it was longer
	// and ends it with "…".
	stderrKeepBytes = progress.MaxLogLineBytes + 4
	// stderrLines is how many of the last stderr lines are kept.
	stderrLines = 20
	// messageBytes bounds a message taken from a text line.
	messageBytes = 200
)

// ParseLine reads progress from one line a command printed (without its
// line ending). It understands:
//
//   - a JSON object with any of "progress" (0..1), "current", "total"
//     (numbers ≥ 0) and "message" (a string);
//   - text holding NN% or NN.N% (the last one on the line wins), giving
//     progress NN/100;
//   - text holding N/M with N ≤ M and M > 0 (the last one wins), giving
//     current N and total M.
//
// Text that matches sets the message to the line itself, tidied. Values out
// of range (120%, 5/3, a progress of 2) are ignored rather than reported,
// so what ParseLine returns is always a report the model accepts. ok is
// false when the line says nothing about progress. ParseLine never panics,
// whatever the bytes.
func ParseLine(line []byte) (r progress.Report, ok bool) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return r, false
	}
	if line[0] == '{' {
		if r, ok := parseJSON(line); ok {
			return r, true
		}
	}
	return parseText(line)
}

func parseJSON(line []byte) (r progress.Report, ok bool) {
	// Decode field by field so one field of the wrong type (a string
	// "progress": "50%") costs only that field.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(line, &raw); err != nil || raw == nil {
		return r, false
	}
	num := func(key string) (float64, bool) {
		v, ok := raw[key]
		if !ok {
			return 0, false
		}
		var f float64
		if json.Unmarshal(v, &f) != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			return 0, false
		}
		return f, true
	}
	if p, ok := num("progress"); ok && p <= 1 {
		r.Progress = &p
	}
	cur, hasCur := num("current")
	tot, hasTot := num("total")
	switch {
	case hasCur && hasTot:
		if cur <= tot {
			r.Current, r.Total = &cur, &tot
		}
	case hasCur:
		r.Current = &cur // against a total reported before
	case hasTot:
		r.Total = &tot
	}
	if v, ok := raw["message"]; ok {
		var m string
		if json.Unmarshal(v, &m) == nil {
			m = tidy(m, progress.MaxMessageBytes)
			r.Message = &m
		}
	}
	return r, r.Progress != nil || r.Current != nil || r.Total != nil || r.Message != nil
}

func parseText(line []byte) (r progress.Report, ok bool) {
	if p, found := lastPercent(line); found {
		r.Progress = &p
		ok = true
	}
	if cur, tot, found := lastFraction(line); found {
		r.Current, r.Total = &cur, &tot
		ok = true
	}
	if ok {
		m := tidy(string(line), messageBytes)
		r.Message = &m
	}
	return r, ok
}

// lastPercent finds the last NN% or NN.N% (digits right before '%') on the
// line with a value from 0 to 100.
func lastPercent(line []byte) (float64, bool) {
	for end := bytes.LastIndexByte(line, '%'); end >= 0; end = bytes.LastIndexByte(line[:end], '%') {
		start := end
		for start > 0 && (isDigit(line[start-1]) || line[start-1] == '.') {
			start--
		}
		num := line[start:end]
		if v, ok := parseNumber(num); ok && v <= 100 {
			return v / 100, true
		}
	}
	return 0, false
}

// lastFraction finds the last N/M on the line (digits on both sides of
// '/', optional spaces around it) with 0 ≤ N ≤ M and M > 0.
func lastFraction(line []byte) (cur, tot float64, ok bool) {
	for slash := bytes.LastIndexByte(line, '/'); slash >= 0; slash = bytes.LastIndexByte(line[:slash], '/') {
		l := slash
		for l > 0 && line[l-1] == ' ' {
			l--
		}
		ls := l
		for ls > 0 && (isDigit(line[ls-1]) || line[ls-1] == '.') {
			ls--
		}
		r := slash + 1
		for r < len(line) && line[r] == ' ' {
			r++
		}
		re := r
		for re < len(line) && (isDigit(line[re]) || line[re] == '.') {
			re++
		}
		n, okN := parseNumber(line[ls:l])
		m, okM := parseNumber(line[r:re])
		if okN && okM && m > 0 && n <= m && boundary(line, ls, re) {
			return n, m, true
		}
	}
	return 0, 0, false
}

// boundary reports whether the number run line[start:end] stands alone:
// not glued to letters (v1/2, abc12/34x) or part of a path or date
// (2024/01/02, /tmp/1/2).
func boundary(line []byte, start, end int) bool {
	if start > 0 {
		c := line[start-1]
		if c == '/' || c == '-' || isLetter(c) {
			return false
		}
	}
	if end < len(line) {
		c := line[end]
		if c == '/' || isLetter(c) || isDigit(c) {
			return false
		}
	}
	return true
}

// parseNumber reads digits with at most one '.', not starting or ending in
// '.', as a finite float.
func parseNumber(b []byte) (float64, bool) {
	if len(b) == 0 || len(b) > 32 || b[0] == '.' || b[len(b)-1] == '.' || bytes.Count(b, []byte{'.'}) > 1 {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, false
	}
	return v, true
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }

// tidy makes s fit a message: valid UTF-8, control characters (ANSI
// colour codes, tabs) turned into spaces, trimmed, at most max bytes cut
// at a rune boundary.
func tidy(s string, max int) string {
	if len(s) > 4*max {
		s = s[:4*max] // bound the work on huge input
	}
	var b strings.Builder
	b.Grow(min(len(s), max))
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if unicode.IsControl(r) || !unicode.IsPrint(r) && !unicode.IsSpace(r) {
			r = ' '
		}
		if b.Len()+utf8.RuneLen(r) > max {
			break
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}

// lineSplitter is an io.Writer that cuts a byte stream into lines at '\n'
// and '\r' (tools that redraw one line, like curl and ffmpeg, end updates
// with '\r') and hands each non-empty line to fn. It buffers at most max
// bytes: a longer line is skipped whole, or, with truncate, cut to max;
// with onCut set, its first max bytes go to onCut instead of fn (a line
// too long to be progress is still a log line). However long a line, the
// splitter holds at most max bytes and never stops reading.
// The slice fn gets is valid only during the call. Not safe for
// concurrent use: one stream, one splitter.
type lineSplitter struct {
	max      int
	truncate bool
	fn       func([]byte)
	onCut    func([]byte)
	buf      []byte
	over     bool // the current line passed max
}

func (s *lineSplitter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			s.add(p)
			break
		}
		s.add(p[:i])
		s.end()
		p = p[i+1:]
	}
	return n, nil
}

func (s *lineSplitter) add(b []byte) {
	if s.over {
		return
	}
	if room := s.max - len(s.buf); len(b) > room {
		s.over = true
		if !s.truncate && s.onCut == nil {
			s.buf = s.buf[:0]
			return
		}
		b = b[:room]
	}
	s.buf = append(s.buf, b...)
}

func (s *lineSplitter) end() {
	switch {
	case len(s.buf) == 0:
	case !s.over || s.truncate:
		s.fn(s.buf)
	case s.onCut != nil:
		s.onCut(s.buf)
	}
	s.buf = s.buf[:0]
	s.over = false
}

// Flush delivers a last line that had no line ending.
func (s *lineSplitter) Flush() { s.end() }

// tail keeps the last lines of a stream (stderr), bounded in count and
// size, for error messages. Safe for concurrent use.
type tail struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

func newTail(n int) *tail { return &tail{lines: make([]string, n)} }

func (t *tail) add(line []byte) {
	s := tidy(string(line), stderrLineBytes)
	if s == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines[t.next] = s
	t.next = (t.next + 1) % len(t.lines)
	if t.next == 0 {
		t.full = true
	}
}

// Lines returns the kept lines, oldest first.
func (t *tail) Lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.full {
		return append([]string(nil), t.lines[:t.next]...)
	}
	return append(append([]string(nil), t.lines[t.next:]...), t.lines[:t.next]...)
}

// Last returns the last line, or "".
func (t *tail) Last() string {
	lines := t.Lines()
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}
