package broker

import (
	"context"
	"errors"
)

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("broker: closed")

// Local delivers updates to subscribers in this process only. Publish calls
// every subscriber before it returns, so updates of one job reach each
// subscriber in the order they were published; subscribers only enqueue, so
// this costs the publisher little.
type Local struct {
	subs Subscribers
}

var _ Broker = (*Local)(nil)

// NewLocal returns an in-process broker.
func NewLocal() *Local { return &Local{} }

// Publish implements Broker.
func (l *Local) Publish(_ context.Context, u Update) error { return l.subs.Deliver(u) }

// Subscribe implements Broker.
func (l *Local) Subscribe(fn func(Update)) func() { return l.subs.Add(fn) }

// Close implements Broker. Calling it again does nothing.
func (l *Local) Close() error {
	l.subs.Close()
	return nil
}
