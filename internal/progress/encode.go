package progress

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// MarshalJSON encodes s in the contract's shape.
//
// It is written by hand because encoding a snapshot is on the path of every
// report: BenchmarkReportService spent 40% of its time in encoding/json's
// reflection. The output is byte-for-byte what encoding/json produces with
// HTML escaping off (TestAppendJSONMatchesEncodingJSON checks that).
func (s Snapshot) MarshalJSON() ([]byte, error) {
	return s.AppendJSON(make([]byte, 0, 512))
}

var errNotFinite = errors.New("progress: snapshot holds a NaN or infinite number")

// AppendJSON appends the JSON encoding of s to b.
func (s *Snapshot) AppendJSON(b []byte) ([]byte, error) {
	if !finite(s.Progress) || !finitePtr(s.Current) || !finitePtr(s.Total) || !finitePtr(s.ETASeconds) {
		return b, errNotFinite
	}
	b = append(b, `{"job_id":`...)
	b = appendString(b, s.JobID)
	b = append(b, `,"project":`...)
	b = appendString(b, s.Project)
	b = append(b, `,"owner":`...)
	b = appendString(b, s.Owner)
	b = append(b, `,"pipeline":`...)
	b = appendString(b, s.Pipeline)
	if len(s.Params) > 0 {
		b = append(b, `,"params":{`...)
		keys := make([]string, 0, len(s.Params))
		for k := range s.Params {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, s.Params[k])
		}
		b = append(b, '}')
	}
	b = append(b, `,"state":`...)
	b = appendString(b, string(s.State))
	b = append(b, `,"progress":`...)
	b = appendFloat(b, s.Progress)
	b = append(b, `,"stage":`...)
	b = appendString(b, s.Stage)
	b = append(b, `,"stages":`...)
	if s.Stages == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range s.Stages {
			st := &s.Stages[i]
			if !finite(st.Weight) || !finite(st.Progress) {
				return b, errNotFinite
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendString(b, st.Name)
			b = append(b, `,"weight":`...)
			b = appendFloat(b, st.Weight)
			b = append(b, `,"state":`...)
			b = appendString(b, string(st.State))
			b = append(b, `,"progress":`...)
			b = appendFloat(b, st.Progress)
			if st.Children {
				b = append(b, `,"children":true`...)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"current":`...)
	b = appendFloatPtr(b, s.Current)
	b = append(b, `,"total":`...)
	b = appendFloatPtr(b, s.Total)
	b = append(b, `,"message":`...)
	b = appendString(b, s.Message)
	b = append(b, `,"eta_seconds":`...)
	b = appendFloatPtr(b, s.ETASeconds)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, s.Seq, 10)
	b = append(b, `,"created_at":`...)
	b = appendTime(b, &s.CreatedAt)
	b = append(b, `,"started_at":`...)
	b = appendTime(b, s.StartedAt)
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, &s.UpdatedAt)
	b = append(b, `,"finished_at":`...)
	b = appendTime(b, s.FinishedAt)
	b = append(b, `,"error":`...)
	if s.Error == nil {
		b = append(b, "null"...)
	} else {
		b = appendString(b, *s.Error)
	}
	if s.Name != "" || len(s.Tags) > 0 || s.ParentID != "" || s.RootID != "" || s.Weight != 0 ||
		s.ExpectedChildren != 0 || s.Children != nil || s.TraceID != "" ||
		len(s.Metadata) > 0 || len(s.Result) > 0 || s.Attempt != 0 || s.MaxAttempts != 0 || s.RetryAt != nil ||
		s.StallAfter != 0 || s.AbandonAfter != 0 || s.Stalled || s.ReportedAt != nil {
		var err error
		if b, err = s.appendGroup(b); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

// appendGroup writes the part-two fields, each only when set (omitempty).
// It is a function of its own so the common snapshot, which has none of
// them, pays one branch for them.
func (s *Snapshot) appendGroup(b []byte) ([]byte, error) {
	if s.Name != "" {
		b = append(b, `,"name":`...)
		b = appendString(b, s.Name)
	}
	if len(s.Tags) > 0 {
		b = append(b, `,"tags":[`...)
		for i, t := range s.Tags {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, t)
		}
		b = append(b, ']')
	}
	if s.ParentID != "" {
		b = append(b, `,"parent_id":`...)
		b = appendString(b, s.ParentID)
	}
	if s.RootID != "" {
		b = append(b, `,"root_id":`...)
		b = appendString(b, s.RootID)
	}
	if s.Weight != 0 {
		if !finite(s.Weight) {
			return b, errNotFinite
		}
		b = append(b, `,"weight":`...)
		b = appendFloat(b, s.Weight)
	}
	if s.ExpectedChildren != 0 {
		b = append(b, `,"expected_children":`...)
		b = strconv.AppendInt(b, int64(s.ExpectedChildren), 10)
	}
	if c := s.Children; c != nil {
		b = append(b, `,"children":{"total":`...)
		b = strconv.AppendInt(b, int64(c.Total), 10)
		b = append(b, `,"queued":`...)
		b = strconv.AppendInt(b, int64(c.Queued), 10)
		b = append(b, `,"running":`...)
		b = strconv.AppendInt(b, int64(c.Running), 10)
		b = append(b, `,"succeeded":`...)
		b = strconv.AppendInt(b, int64(c.Succeeded), 10)
		b = append(b, `,"failed":`...)
		b = strconv.AppendInt(b, int64(c.Failed), 10)
		b = append(b, `,"canceled":`...)
		b = strconv.AppendInt(b, int64(c.Canceled), 10)
		b = append(b, '}')
	}
	if s.TraceID != "" {
		b = append(b, `,"trace_id":`...)
		b = appendString(b, s.TraceID)
	}
	// Both are stored as encoding/json wrote them (compact, HTML
	// escaped), so the bytes are what encoding/json would write.
	if len(s.Metadata) > 0 {
		b = append(b, `,"metadata":`...)
		b = append(b, s.Metadata...)
	}
	if len(s.Result) > 0 {
		b = append(b, `,"result":`...)
		b = append(b, s.Result...)
	}
	return s.appendLifecycle(b)
}

// appendLifecycle writes the fields of attempts, stalls and abandoned
// jobs, each only when set (omitempty).
func (s *Snapshot) appendLifecycle(b []byte) ([]byte, error) {
	if s.Attempt != 0 {
		b = append(b, `,"attempt":`...)
		b = strconv.AppendInt(b, int64(s.Attempt), 10)
	}
	if s.MaxAttempts != 0 {
		b = append(b, `,"max_attempts":`...)
		b = strconv.AppendInt(b, int64(s.MaxAttempts), 10)
	}
	if s.RetryAt != nil {
		b = append(b, `,"retry_at":`...)
		b = appendTime(b, s.RetryAt)
	}
	if !finite(s.StallAfter) || !finite(s.AbandonAfter) {
		return b, errNotFinite
	}
	if s.StallAfter != 0 {
		b = append(b, `,"stall_after_seconds":`...)
		b = appendFloat(b, s.StallAfter)
	}
	if s.AbandonAfter != 0 {
		b = append(b, `,"abandon_after_seconds":`...)
		b = appendFloat(b, s.AbandonAfter)
	}
	if s.Stalled {
		b = append(b, `,"stalled":true`...)
	}
	if s.ReportedAt != nil {
		b = append(b, `,"reported_at":`...)
		b = appendTime(b, s.ReportedAt)
	}
	return b, nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func finitePtr(f *float64) bool { return f == nil || finite(*f) }

// appendTime writes t in TimeLayout. The layout is fixed, so the digits
// are written directly: time.AppendFormat, which interprets the layout on
// every call, was 18% of BenchmarkReportService (four timestamps a snapshot).
func appendTime(b []byte, t *Time) []byte {
	if t == nil {
		return append(b, "null"...)
	}
	u := t.UTC()
	year, month, day := u.Date()
	if year < 0 || year > 9999 {
		b = append(b, '"')
		b = u.AppendFormat(b, TimeLayout)
		return append(b, '"')
	}
	hour, minute, sec := u.Clock()
	b = append(b, '"')
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	b = appendDigits(b, u.Nanosecond()/1e6, 3)
	return append(b, 'Z', '"')
}

// appendDigits writes v (≥ 0) zero-padded to width digits.
func appendDigits(b []byte, v, width int) []byte {
	var buf [4]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, buf[:width]...)
}

func appendFloatPtr(b []byte, f *float64) []byte {
	if f == nil {
		return append(b, "null"...)
	}
	return appendFloat(b, *f)
}

// appendFloat formats f as encoding/json does: the shortest representation,
// in exponent form only for very small or very large magnitudes.
func appendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaping what JSON requires,
// invalid UTF-8 as U+FFFD and U+2028/U+2029 (as encoding/json does, for
// JavaScript). HTML characters are not escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
