package progress

import (
	"bytes"
	"encoding/json"
)

// Limits of metadata and result (SPEC part two, "Metadata, result").
const (
	MaxMetadataBytes = 16 << 10 // the merged metadata object, encoded
	MaxResultBytes   = 64 << 10 // the result object, encoded
)

// Codes of metadata and result errors. CodeTooLarge is answered with 413.
const (
	CodeInvalidMetadata = "invalid_metadata" // metadata that is not a JSON object
	CodeInvalidResult   = "invalid_result"   // a result that is not an object, or without succeeded
	CodeTooLarge        = "too_large"        // metadata over 16 KiB merged, a result over 64 KiB
)

// given reports whether a raw field was sent (absent and null are not).
func given(raw json.RawMessage) bool {
	return len(raw) > 0 && !bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// mergeMetadata merges the object update into the object prev key by key
// at the top level (a null value removes the key) and returns the merged
// object encoded by encoding/json (keys sorted; nil when empty).
func mergeMetadata(prev, update json.RawMessage) (json.RawMessage, error) {
	var upd map[string]json.RawMessage
	if err := json.Unmarshal(update, &upd); err != nil || upd == nil {
		return nil, errorf(CodeInvalidMetadata, "metadata must be a JSON object such as {\"rows\": 120}")
	}
	merged := map[string]json.RawMessage{}
	if len(prev) > 0 {
		if err := json.Unmarshal(prev, &merged); err != nil {
			merged = map[string]json.RawMessage{} // cannot happen: prev was encoded here
		}
	}
	for k, v := range upd {
		if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			delete(merged, k)
		} else {
			merged[k] = v
		}
	}
	if len(merged) == 0 {
		return nil, nil
	}
	out, err := json.Marshal(merged)
	if err != nil {
		return nil, errorf(CodeInvalidMetadata, "metadata: %v", err)
	}
	if len(out) > MaxMetadataBytes {
		return nil, errorf(CodeTooLarge, "metadata would be %d bytes merged; the limit is %d: send fewer or smaller values, or null to remove keys", len(out), MaxMetadataBytes)
	}
	return out, nil
}

// checkResult validates a result and returns it encoded by encoding/json.
func checkResult(raw json.RawMessage) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, errorf(CodeInvalidResult, "result must be a JSON object such as {\"url\": \"…\"}")
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, errorf(CodeInvalidResult, "result: %v", err)
	}
	if len(out) > MaxResultBytes {
		return nil, errorf(CodeTooLarge, "result is %d bytes; the limit is %d: store large outputs elsewhere and put their address here", len(out), MaxResultBytes)
	}
	return out, nil
}
