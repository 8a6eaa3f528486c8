package broker

import "sync"

// Subscribers is the registry of a node's local subscribers that every
// broker keeps: Local is nothing else, and a broker between nodes hands
// what it receives to one of these. The zero value is ready to use; all
// methods are safe for concurrent use.
//
// Deliver calls the subscribers under a read lock, so a subscriber must
// not call Add or a cancel function from inside its callback.
type Subscribers struct {
	mu     sync.RWMutex
	subs   map[int]func(Update)
	nextID int
	closed bool
}

// Add registers fn and returns the function that unregisters it (safe to
// call more than once). After Close, fn is never called.
func (s *Subscribers) Add(fn func(Update)) (cancel func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return func() {}
	}
	if s.subs == nil {
		s.subs = make(map[int]func(Update))
	}
	id := s.nextID
	s.nextID++
	s.subs[id] = fn
	return func() {
		s.mu.Lock()
		delete(s.subs, id)
		s.mu.Unlock()
	}
}

// Deliver calls every subscriber with u before it returns, or returns
// ErrClosed after Close.
func (s *Subscribers) Deliver(u Update) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	for _, fn := range s.subs {
		fn(u)
	}
	return nil
}

// Close drops every subscriber; Deliver answers ErrClosed from now on. It
// reports whether this call closed the registry (false if it was closed).
func (s *Subscribers) Close() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.closed = true
	clear(s.subs)
	return true
}
