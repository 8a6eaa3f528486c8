// Package webhooktest is a webhook receiver for tests: a real HTTP server
// on a loopback port that checks every request's signature the way
// README.md tells receivers to, answers with a status the test sets, and
// keeps each try and each event delivered (answered 2xx), deduplicated by
// event id as a receiver should.
//
// Its methods are safe for concurrent use.
package webhooktest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/progress"
	"github.com/progressd/progressd/internal/testsvc"
)

// Event is one event as a receiver reads it.
type Event struct {
	ID   string            `json:"id"`
	Type string            `json:"type"`
	Job  progress.Snapshot `json:"job"`
}

// Try is one request the receiver got.
type Try struct {
	Event     Event
	Signature string // the Progressd-Signature header
	Valid     bool   // the signature verifies, and is fresh
	Status    int    // what the receiver answered
}

// Receiver is the test server.
type Receiver struct {
	URL    string
	srv    *httptest.Server
	secret string
	status atomic.Int64
	// Hold, when set, is called before answering: a test blocks in it to
	// be a slow receiver. It gets the request's context.
	hold atomic.Pointer[func(*http.Request)]

	mu        sync.Mutex
	tries     []Try
	delivered map[string]Event
	order     []string // ids in order of first delivery
	dups      int      // 2xx answered for an id already delivered
}

// NewReceiver starts a receiver checking signatures with secret, answering
// 200 until told otherwise; it stops when t ends.
func NewReceiver(t testing.TB, secret string) *Receiver {
	t.Helper()
	r := &Receiver{secret: secret, delivered: map[string]Event{}}
	r.status.Store(http.StatusOK)
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	r.URL = r.srv.URL + "/hooks"
	t.Cleanup(r.srv.Close)
	return r
}

// SetStatus sets what every next request is answered.
func (r *Receiver) SetStatus(code int) { r.status.Store(int64(code)) }

// Hold makes every next request wait in fn before it is answered; nil ends it.
func (r *Receiver) Hold(fn func(*http.Request)) {
	if fn == nil {
		r.hold.Store(nil)
		return
	}
	r.hold.Store(&fn)
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	if fn := r.hold.Load(); fn != nil {
		(*fn)(req)
		if req.Context().Err() != nil {
			return // the sender gave up on this try
		}
	}
	try := Try{Signature: req.Header.Get("Progressd-Signature")}
	try.Valid = Verify(r.secret, try.Signature, body, time.Now())
	_ = json.Unmarshal(body, &try.Event)
	try.Status = int(r.status.Load())
	r.mu.Lock()
	r.tries = append(r.tries, try)
	if try.Status/100 == 2 && try.Valid {
		if _, seen := r.delivered[try.Event.ID]; seen {
			r.dups++
		} else {
			r.delivered[try.Event.ID] = try.Event
			r.order = append(r.order, try.Event.ID)
		}
	}
	r.mu.Unlock()
	w.WriteHeader(try.Status)
}

// Verify is how README.md tells a receiver to check an event: the header
// is "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">"; the MAC is
// compared in constant time, and a t more than 5 minutes from now refused.
func Verify(secret, header string, body []byte, now time.Time) bool {
	var ts, sig string
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || now.Sub(time.Unix(t, 0)).Abs() > 5*time.Minute {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(body)))
	want := hex.EncodeToString(mac.Sum(nil))
	return hmac.Equal([]byte(sig), []byte(want))
}

// Tries returns every request so far, in order.
func (r *Receiver) Tries() []Try {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Try(nil), r.tries...)
}

// Delivered returns the events delivered, each once, in order of first
// delivery, and how many 2xx answers repeated an event already delivered.
func (r *Receiver) Delivered() (events []Event, dups int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range r.order {
		events = append(events, r.delivered[id])
	}
	return events, r.dups
}

// WaitDelivered waits until n distinct events were delivered, failing t
// after timeout; it returns them.
func (r *Receiver) WaitDelivered(t testing.TB, n int, timeout time.Duration) []Event {
	t.Helper()
	testsvc.Eventually(t, timeout, strconv.Itoa(n)+" webhook events delivered", func() bool {
		ev, _ := r.Delivered()
		return len(ev) >= n
	})
	ev, _ := r.Delivered()
	return ev
}

// WaitTries waits until the receiver got at least n requests.
func (r *Receiver) WaitTries(t testing.TB, n int, timeout time.Duration) []Try {
	t.Helper()
	testsvc.Eventually(t, timeout, strconv.Itoa(n)+" webhook tries", func() bool { return len(r.Tries()) >= n })
	return r.Tries()
}
