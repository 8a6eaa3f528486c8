// Package webhook tells other systems when a job ends or stalls: every
// store.Change becomes an event, {"id", "type", "job": snapshot}, POSTed to
// each configured URL with a Progressd-Signature header (an HMAC-SHA256 of
// "<t>.<body>" under the webhook secret, computed anew for every try).
//
// # Durable, at least once
//
// The durable store calls Queue.Record inside the transaction that writes
// the change (store.OnChange), and Record inserts one River job per (event,
// URL) in that same transaction (River's InsertManyTx): the event is queued
// if and only if the terminal state or stall is recorded, and nothing else
// happens on the path of the report. A River worker then delivers it:
// every answer other than a 2xx — a 3xx too: redirects are never followed —
// and every try that takes longer than Config.Timeout (10 s) is retried,
// after 10 s, then twice as long each time up to 10 minutes apart, each
// wait up to an eighth shorter at random so that events that failed
// together spread out; after Config.GiveUpAfter (24 h) the event is given
// up and counted. A failed try also opens the URL's breaker (breaker.go):
// its other deliveries wait, and one probe tries on that schedule, so a
// receiver that is down costs a try per step, not a try per event. The
// event id is made once, when the event is recorded, and is the same on
// every try, so a receiver can drop duplicates by it.
//
// With SQLite, River's tables are in the job store's own file (a
// transaction cannot span two files), and the worker uses the store's one
// connection (see OpenSQLite for why). With PostgreSQL they are in the store's database,
// shared by every node: any node delivers any event, so a node that stops
// or dies leaves its queued events to the others. Only the orchestrator's
// River client leads there (its leader runs River's maintenance for both
// kinds of job; it registers this package's kinds with AddKind so that a
// delivery or probe stuck on a dead node is retried, not discarded as
// unknown). With SQLite a starting node puts back what a dead process left
// running (Start).
//
// # Concurrency
//
// Queue's methods are safe for concurrent use. Start runs up to
// Config.Workers deliveries at once per URL, each in a River goroutine;
// Stop waits for them (cancelling them when its context ends; a cancelled
// try is retried) and closes what Open opened.
package webhook
