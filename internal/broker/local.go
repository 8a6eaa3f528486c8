package broker

import (
	"context"
	"errors"
	"sync"
)

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("broker: closed")

// Local delivers updates to subscribers in this process only. Publish calls
// every subscriber before it returns, so updates of one job reach each
// subscriber in the order they were published; subscribers only enqueue, so
// this costs the publisher little.
type Local struct {
	mu     sync.RWMutex
	subs   map[int]func(Update)
	nextID int
	closed bool
}

var _ Broker = (*Local)(nil)

// NewLocal returns an in-process broker.
func NewLocal() *Local { return &Local{subs: make(map[int]func(Update))} }

// Publish implements Broker.
func (l *Local) Publish(_ context.Context, u Update) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	for _, fn := range l.subs {
		fn(u)
	}
	return nil
}

// Subscribe implements Broker.
func (l *Local) Subscribe(fn func(Update)) func() {
	l.mu.Lock()
	defer l.mu.Unlock()
	id := l.nextID
	l.nextID++
	l.subs[id] = fn
	return func() {
		l.mu.Lock()
		delete(l.subs, id)
		l.mu.Unlock()
	}
}

// Close implements Broker.
func (l *Local) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	clear(l.subs)
	return nil
}
