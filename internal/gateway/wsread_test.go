package gateway

import (
	"io"
	"testing"
	"time"
)

// TestPrefixReaderMore: more says whether bytes wait — in the buffer or
// in the socket, which it then reads without waiting — and returns at
// once when none do. Once the peer has closed, more says no and the next
// read meets the end.
func TestPrefixReaderMore(t *testing.T) {
	t.Parallel()
	server, raw, client := tcpPair(t)
	r := &prefixReader{pre: []byte("ab"), conn: server, raw: raw}
	if !r.more() {
		t.Fatal("more: no, with the bytes read past the upgrade waiting")
	}
	r.buffer()
	p := make([]byte, 2)
	if _, err := io.ReadFull(r, p); err != nil || string(p) != "ab" {
		t.Fatalf("read %q, %v", p, err)
	}
	if r.more() { // returns at once: nothing was sent
		t.Fatal("more: yes, with nothing sent")
	}
	if _, err := client.Write([]byte("cde")); err != nil {
		t.Fatal(err)
	}
	// The bytes reach the server's socket on their own time: bounded wait.
	deadline := time.Now().Add(5 * time.Second)
	for !r.more() {
		if time.Now().After(deadline) {
			t.Fatal("more: no, 5 s after bytes were sent")
		}
		time.Sleep(time.Millisecond)
	}
	if r.buffered() != 3 {
		t.Fatalf("%d bytes buffered, want the 3 sent", r.buffered())
	}
	p = make([]byte, 3)
	if _, err := io.ReadFull(r, p); err != nil || string(p) != "cde" {
		t.Fatalf("read %q, %v", p, err)
	}
	client.Close()
	for range 100 { // the end may take a moment to arrive; more never says yes
		if r.more() {
			t.Fatal("more: yes, after the peer closed")
		}
	}
	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := r.Read(p); n != 0 || err != io.EOF {
		t.Fatalf("read after the peer closed: %d, %v; want io.EOF", n, err)
	}
}
