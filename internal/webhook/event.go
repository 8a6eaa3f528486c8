package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/store"
)

// SignatureHeader carries an event's signature: "t=<unix seconds>,v1=<hex
// HMAC-SHA256 of "<t>.<body>" under the secret>".
const SignatureHeader = "Progressd-Signature"

// Event types: a terminal state, or a stall.
const (
	TypeSucceeded = "job.succeeded"
	TypeFailed    = "job.failed"
	TypeCanceled  = "job.canceled"
	TypeStalled   = "job.stalled"
)

// eventType names the event of change c.
func eventType(c store.Change) string {
	switch {
	case c.Kind != store.Ended:
		return TypeStalled
	case c.Snapshot.State == progress.Succeeded:
		return TypeSucceeded
	case c.Snapshot.State == progress.Failed:
		return TypeFailed
	default:
		return TypeCanceled
	}
}

// eventBody is the JSON an event is POSTed as. The snapshot goes in as the
// store wrote it; id (a UUID) and typ (a constant) need no escaping.
func eventBody(id, typ, job string) []byte {
	b := make([]byte, 0, len(id)+len(typ)+len(job)+32)
	b = append(b, `{"id":"`...)
	b = append(b, id...)
	b = append(b, `","type":"`...)
	b = append(b, typ...)
	b = append(b, `","job":`...)
	b = append(b, job...)
	return append(b, '}')
}

// Sign returns the SignatureHeader value for body sent at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}
