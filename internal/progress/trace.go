package progress

import "strings"

// TraceID returns the trace id of a W3C traceparent header
// ("00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>"), or "" when the
// header is absent or malformed: a bad traceparent is ignored, as the W3C
// Trace Context spec asks, and never fails a request. Versions other than
// 00 are read by the 00 layout (the spec's forward compatibility), except
// ff, which is invalid; all-zero ids are invalid.
func TraceID(traceparent string) string {
	h := strings.TrimSpace(traceparent)
	if len(h) < 55 || (len(h) > 55 && h[55] != '-') {
		return ""
	}
	version, trace, parent, flags := h[0:2], h[3:35], h[36:52], h[53:55]
	if h[2] != '-' || h[35] != '-' || h[52] != '-' || !lowerHex(version) || version == "ff" ||
		!lowerHex(trace) || !lowerHex(parent) || !lowerHex(flags) ||
		(version == "00" && len(h) != 55) ||
		trace == strings.Repeat("0", 32) || parent == strings.Repeat("0", 16) {
		return ""
	}
	return trace
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
