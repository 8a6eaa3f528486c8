package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
)

// fastRoute makes the handler of an operation with a hand-written fast
// path: it serves the common request itself and hands anything else to
// slow, huma's handler of the operation, before it has changed anything.
type fastRoute func(op *huma.Operation, slow http.HandlerFunc) http.HandlerFunc

// adapter is humago's adapter, except that the operations in fast are
// routed to their fast path. The operation stays registered with huma
// as before (its document, its middlewares, its errors), and huma's
// handler still serves whatever the fast path does not.
type adapter struct {
	huma.Adapter
	mux  *http.ServeMux
	fast map[string]fastRoute
}

func (d *adapter) Handle(op *huma.Operation, handler func(huma.Context)) {
	route, ok := d.fast[op.OperationID]
	if !ok {
		d.Adapter.Handle(op, handler)
		return
	}
	slow := func(w http.ResponseWriter, r *http.Request) { handler(humago.NewContext(op, r, w)) }
	d.mux.HandleFunc(strings.ToUpper(op.Method)+" "+op.Path, route(op, slow))
}

// reportFast is POST /api/v1/jobs/{id}/progress without huma's generic
// request and response handling: the reflection that fills reportInput,
// the copies of the snapshot into snapshotOutput, into an interface and
// out of it again, the context values. One report per request is what a
// plain worker sends, and those were a third of the allocations of a
// request and ~6% of its CPU (progressd bench --scenario perjob).
//
// It takes a request a caller with a valid token may make, with a body
// whose length is known and under the limit and an answer huma would
// write as JSON; anything else (no token, a bad one, a forbidden job, a
// chunked or too large body, an Accept without JSON) goes to huma's
// handler untouched, which answers exactly as it always did. The report
// itself and its errors are reportProgress's (report), written as huma
// writes a handler's error (writeErr).
func (a *API) reportFast(op *huma.Operation, slow http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := humago.NewContext(op, r, w)
		p, _, err := a.caller(ctx)
		if err != nil || r.ContentLength <= 0 || r.ContentLength >= op.MaxBodyBytes {
			slow(w, r)
			return
		}
		ct, err := a.huma.Negotiate(r.Header.Get("Accept"))
		if err != nil || ct != "application/json" {
			slow(w, r)
			return
		}
		// As huma: the body's read deadline, a body of at most the
		// operation's limit (checked above: its length is known).
		if op.BodyReadTimeout > 0 {
			_ = ctx.SetReadDeadline(time.Now().Add(op.BodyReadTimeout))
		}
		buf := bodyPool.Get().(*[]byte)
		defer bodyPool.Put(buf)
		if int64(cap(*buf)) < r.ContentLength {
			*buf = make([]byte, r.ContentLength)
		}
		body := (*buf)[:r.ContentLength]
		if n, err := io.ReadFull(r.Body, body); err != nil {
			// huma's handler reads it again and answers the error:
			// from what was read, then the rest.
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(bytes.Clone(body[:n])), r.Body))
			slow(w, r)
			return
		}
		_ = r.Body.Close()

		rctx := context.WithValue(r.Context(), principalKey{}, p)
		snap, err := a.report(rctx, p, r.PathValue("id"), r.Header.Get("traceparent"), body)
		if err != nil {
			a.writeErr(ctx, err)
			return
		}
		out := bufPool.Get().(*[]byte)
		defer bufPool.Put(out)
		b, err := snap.AppendJSON((*out)[:0])
		if err != nil {
			a.writeErr(ctx, err)
			return
		}
		*out = append(b, '\n')
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(*out)
	}
}

// writeErr answers err as huma answers a handler's error: its status and
// body if it has one (ours all do), else 500.
func (a *API) writeErr(ctx huma.Context, err error) {
	var se huma.StatusError
	if errors.As(err, &se) {
		_ = huma.WriteErr(a.huma, ctx, se.GetStatus(), "", se)
		return
	}
	_ = huma.WriteErr(a.huma, ctx, http.StatusInternalServerError, "unexpected error occurred", err)
}

// bodyPool holds the buffers reportFast reads bodies into. Nothing keeps
// a body past its request: the decoders copy what they keep, as they
// must for huma, which reuses its buffers too.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}
