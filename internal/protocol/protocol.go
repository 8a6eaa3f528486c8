// Package protocol is the one table of the facts every program speaking
// progressd's WebSocket protocol must agree on: the close codes the server
// sends (what each means, whether a client should reconnect and how long
// it must wait at least) and the error codes of replies. The gateway sends
// them, the Go client and the load tool act on them, the OpenAPI
// description lists them, and the TypeScript client imports a copy
// generated from this table (web/packages/client/src/protocol.gen.ts, held equal to
// it by this package's tests). To add a close code or an error code, add
// a row here and run `go test ./internal/protocol -update`.
//
// Everything here is constant data; it is safe for concurrent use.
package protocol

import (
	"slices"
	"strings"
	"time"
)

// Close codes the server sends: RFC 6455's it uses, and SPEC.md's own.
// They are untyped, so they fit the status code type of any WebSocket
// library.
const (
	CloseGoingAway          = 1001
	CloseProtocolError      = 1002
	CloseInvalidPayload     = 1007
	CloseTooLarge           = 1009
	CloseUnauthorized       = 4001
	CloseTooSlow            = 4008
	CloseTooManyConnections = 4029
)

// Close is what one close code tells a client.
type Close struct {
	Code int
	// Name is stable: clients report it as the reason they reconnect.
	Name string
	// Meaning says why the server closes with this code.
	Meaning string
	// Reconnect says whether connecting again can help. When false,
	// something must change first (a fresh token), and a client stops.
	Reconnect bool
	// MinDelay is the least time to wait before reconnecting, whatever
	// the client's backoff says: reconnecting sooner would be refused the
	// same way and only add load.
	MinDelay time.Duration
}

// Closes is the table of close codes, by code.
var Closes = []Close{
	{CloseGoingAway, "going_away", "the server is shutting down or restarting", true, 0},
	{CloseProtocolError, "protocol_error", "the client broke the WebSocket framing rules", true, 0},
	{CloseInvalidPayload, "invalid_payload", "a text frame was not UTF-8", true, 0},
	{CloseTooLarge, "frame_too_large", "a frame was larger than the server's limit (--max-frame-bytes)", true, 0},
	{CloseUnauthorized, "unauthorized", "no, bad or expired token: reconnecting needs a fresh one", false, 0},
	{CloseTooSlow, "too_slow", "the client could not keep up even after coalescing", true, 0},
	{CloseTooManyConnections, "too_many_connections", "too many connections for this user (--max-conns-per-user)", true, 5 * time.Second},
}

// CloseOf returns the row of close code code, and false for a code the
// server does not send (1000, 1006, …): treat those as a dropped network
// connection.
func CloseOf(code int) (Close, bool) {
	i := slices.IndexFunc(Closes, func(c Close) bool { return c.Code == code })
	if i < 0 {
		return Close{}, false
	}
	return Closes[i], true
}

// Channel kinds: the part of a channel name before the colon.
const (
	ChannelJob      = "job"
	ChannelProject  = "project"
	ChannelUser     = "user"
	ChannelChildren = "children"
	ChannelTag      = "tag"
	ChannelLogs     = "logs"
)

// Channel is one kind of channel a client may subscribe to.
type Channel struct {
	Kind string
	// Key names what follows the colon.
	Key string
	// Meaning says which jobs the channel carries.
	Meaning string
}

// Channels is the table of channel kinds; package auth accepts exactly
// these.
var Channels = []Channel{
	{ChannelJob, "id", "one job, if the subscriber may see it"},
	{ChannelProject, "name", "the jobs of a project that the subscriber may see"},
	{ChannelUser, "id", "the jobs of one owner: the subscriber's own, any for an admin"},
	{ChannelChildren, "id", "the direct children of a job, with the visibility of job: of that job"},
	{ChannelTag, "tag", "the jobs with a tag that the subscriber may see"},
	{ChannelLogs, "id", "a job's log lines (kept ones after \"after\", then live), with the visibility of job: of that job"},
}

// ChannelOf returns the row of channel kind kind, and false for a kind no
// client may subscribe to.
func ChannelOf(kind string) (Channel, bool) {
	i := slices.IndexFunc(Channels, func(c Channel) bool { return c.Kind == kind })
	if i < 0 {
		return Channel{}, false
	}
	return Channels[i], true
}

// ChannelForms lists the channel kinds for messages:
// "job:<id>, project:<name>, … or tag:<tag>".
func ChannelForms() string {
	var b strings.Builder
	for i, c := range Channels {
		switch {
		case i == len(Channels)-1 && i > 0:
			b.WriteString(" or ")
		case i > 0:
			b.WriteString(", ")
		}
		b.WriteString(c.Kind + ":<" + c.Key + ">")
	}
	return b.String()
}

// Error codes of WebSocket replies and of the gateway's HTTP refusals. They
// are part of the contract: clients match on them, so never rename one.
const (
	CodeBadRequest    = "bad_request"
	CodeUnauthorized  = "unauthorized"
	CodeForbidden     = "forbidden"
	CodeNotFound      = "not_found"
	CodeLimitExceeded = "limit_exceeded"
	CodeConflict      = "conflict"
	CodeInternal      = "internal"
	CodeUnavailable   = "unavailable"
)

// Error is what one error code of a reply tells a client.
type Error struct {
	Code    string
	Meaning string
	// Retry says whether the same request may succeed later unchanged.
	Retry bool
}

// Errors is the table of reply error codes.
var Errors = []Error{
	{CodeBadRequest, "malformed frame, unknown op or bad channel name; the connection stays", false},
	{CodeUnauthorized, "no valid token; send an auth frame with a fresh one", false},
	{CodeForbidden, "the channel or job is another user's, or outside the token's scope", false},
	{CodeNotFound, "no such job", false},
	{CodeLimitExceeded, "too many subscriptions on this connection (--max-subscriptions)", false},
	{CodeConflict, "a report to a job that has finished (or, for succeeded, whose children have not)", false},
	{CodeInternal, "the server failed; the server log has the details", true},
	{CodeUnavailable, "the server is shutting down, or a store it needs did not answer a report; nothing was changed", true},
}
