package progress

import (
	"fmt"
	"time"
)

// TimeLayout is how every timestamp in a snapshot is written: RFC 3339, UTC,
// always three fractional digits, so clients can compare them as strings.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// Time is a timestamp at millisecond precision in UTC. It exists so every
// snapshot, whichever store it came back from, encodes its times identically.
type Time struct{ time.Time }

// At returns t truncated to the millisecond, in UTC.
func At(t time.Time) Time { return Time{t.UTC().Truncate(time.Millisecond)} }

// Ptr returns a pointer to a copy of t, for the optional timestamp fields.
func (t Time) Ptr() *Time { return &t }

// MarshalJSON writes t in TimeLayout.
func (t Time) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(TimeLayout)+2)
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, TimeLayout)
	return append(b, '"'), nil
}

// UnmarshalJSON reads any RFC 3339 timestamp.
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return fmt.Errorf("progress: timestamp %s is not a JSON string", b)
	}
	v, err := time.Parse(time.RFC3339Nano, string(b[1:len(b)-1]))
	if err != nil {
		return fmt.Errorf("progress: timestamp: %w", err)
	}
	*t = At(v)
	return nil
}
