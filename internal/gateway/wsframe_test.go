package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/progressd/progressd/internal/auth"
)

// The tests in ws_test.go and flow_test.go use coder/websocket as the
// client: a correct client, good for conformance. These send, frame by
// frame, what a correct client never would.

// rawClient is a WebSocket client that writes and reads single frames.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	r    io.Reader
}

// rawDial connects to /ws with query.
func (e *env) rawDial(t testing.TB, query string) *rawClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dialer{}.Dial(ctx, e.wsURL(query))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn, r: conn}
	if br != nil {
		c.r = br
	}
	return c
}

// maskedFrame encodes a client frame: masked, as RFC 6455 requires.
func maskedFrame(op ws.OpCode, fin bool, p []byte) []byte {
	return ws.MustCompileFrame(ws.MaskFrameWith(ws.NewFrame(op, fin, p), [4]byte{0x12, 0x34, 0x56, 0x78}))
}

func (c *rawClient) write(b ...[]byte) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.conn.Write(bytes.Join(b, nil)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read returns the next server frame.
func (c *rawClient) read() (ws.Header, []byte, error) {
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	h, err := ws.ReadHeader(c.r)
	if err != nil {
		return h, nil, err
	}
	if err := ws.CheckHeader(h, ws.StateClientSide); err != nil {
		return h, nil, err
	}
	p := make([]byte, h.Length)
	_, err = io.ReadFull(c.r, p)
	return h, p, err
}

func (c *rawClient) mustRead() (ws.Header, []byte) {
	c.t.Helper()
	h, p, err := c.read()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return h, p
}

// expectClose reads until the server's close frame, checks its payload,
// and then expects the server to close the connection.
func (c *rawClient) expectClose(want []byte) {
	c.t.Helper()
	for {
		h, p := c.mustRead()
		if h.OpCode != ws.OpClose {
			continue
		}
		if !bytes.Equal(p[:min(len(p), len(want))], want) || (len(want) == 0 && len(p) != 0) {
			code, reason := ws.ParseCloseFrameData(p)
			c.t.Fatalf("close frame %d %q, want payload starting %x", code, reason, want)
		}
		break
	}
	if _, _, err := c.read(); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		c.t.Fatalf("after the close frame: %v, want the connection closed", err)
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

func closeCode(code ws.StatusCode) []byte { return ws.NewCloseFrameBody(code, "")[:2] }

func TestWSFragmentedMessageWithPingBetween(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.rawDial(t, "token="+url.QueryEscape(e.token(t, "alice", false, time.Hour)))
	c.write(
		maskedFrame(ws.OpText, false, []byte(`{"op":"ping",`)),
		maskedFrame(ws.OpPing, true, []byte("hi")),
		maskedFrame(ws.OpContinuation, false, []byte(`"id":`)),
		maskedFrame(ws.OpContinuation, true, []byte(`7}`)),
	)
	if h, p := c.mustRead(); h.OpCode != ws.OpPong || string(p) != "hi" {
		t.Fatalf("got %v %q, want the pong to the ping between the fragments", h.OpCode, p)
	}
	h, p := c.mustRead()
	var f frame
	if err := json.Unmarshal(p, &f); err != nil || h.OpCode != ws.OpText || f.Type != "reply" || string(f.ID) != "7" || f.Error != nil {
		t.Fatalf("got %v %s (%v), want the reply to the fragmented ping", h.OpCode, p, err)
	}
	// A polite close is echoed, then the server closes the connection.
	c.write(maskedFrame(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")))
	c.expectClose(closeCode(ws.StatusNormalClosure))
}

func TestWSProtocolViolationsClose(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *Config) { c.MaxFrameBytes = 1024 })
	rsv := ws.MaskFrameWith(ws.NewTextFrame([]byte(`{"op":"ping","id":1}`)), [4]byte{1, 2, 3, 4})
	rsv.Header.Rsv = ws.Rsv(true, false, false)
	half := bytes.Repeat([]byte("x"), 600)
	for _, tt := range []struct {
		name string
		send [][]byte
		want []byte // close frame payload prefix; empty: no payload
	}{
		{
			name: "unmasked frame",
			send: [][]byte{ws.MustCompileFrame(ws.NewTextFrame([]byte(`{"op":"ping","id":1}`)))},
			want: closeCode(ws.StatusProtocolError),
		},
		{
			name: "reserved opcode",
			send: [][]byte{maskedFrame(ws.OpCode(3), true, nil)},
			want: closeCode(ws.StatusProtocolError),
		},
		{
			name: "rsv bit without extension",
			send: [][]byte{ws.MustCompileFrame(rsv)},
			want: closeCode(ws.StatusProtocolError),
		},
		{
			name: "continuation without a message",
			send: [][]byte{maskedFrame(ws.OpContinuation, true, []byte("x"))},
			want: closeCode(ws.StatusProtocolError),
		},
		{
			name: "new message inside a fragmented one",
			send: [][]byte{maskedFrame(ws.OpText, false, []byte("x")), maskedFrame(ws.OpText, true, []byte("y"))},
			want: closeCode(ws.StatusProtocolError),
		},
		{
			name: "fragmented control frame",
			send: [][]byte{maskedFrame(ws.OpPing, false, nil)},
			want: closeCode(ws.StatusProtocolError),
		},
		{
			name: "close payload of one byte",
			send: [][]byte{maskedFrame(ws.OpClose, true, []byte{3})},
			want: closeCode(ws.StatusProtocolError),
		},
		{
			name: "close with a reserved code",
			send: [][]byte{maskedFrame(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNoStatusRcvd, ""))},
			want: closeCode(ws.StatusProtocolError),
		},
		{
			name: "text that is not UTF-8",
			send: [][]byte{maskedFrame(ws.OpText, true, []byte("{\"op\":\"\xff\"}")), maskedFrame(ws.OpClose, true, nil)},
			want: closeCode(ws.StatusInvalidFramePayloadData),
		},
		{
			name: "message over the limit in fragments under it",
			send: [][]byte{maskedFrame(ws.OpText, false, half), maskedFrame(ws.OpContinuation, true, half), maskedFrame(ws.OpClose, true, nil)},
			want: closeCode(ws.StatusMessageTooBig),
		},
		{
			name: "close without a code is answered without one",
			send: [][]byte{maskedFrame(ws.OpClose, true, nil)},
			want: nil,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := e.rawDial(t, "token="+url.QueryEscape(e.token(t, "root", true, time.Hour)))
			c.write(tt.send...)
			c.expectClose(tt.want)
		})
	}
}

// TestWSFramesSentWithTheHandshake: a client may send frames right behind
// its upgrade request, before it has the response; the HTTP server has
// read them already, and they must not be lost.
func TestWSFramesSentWithTheHandshake(t *testing.T) {
	t.Parallel()
	e := setup(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET /ws?token=" + url.QueryEscape(e.token(t, "alice", false, time.Hour)) + " HTTP/1.1\r\n" +
		"Host: " + strings.TrimPrefix(e.srv.URL, "http://") + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := conn.Write(append([]byte(req), maskedFrame(ws.OpText, true, []byte(`{"op":"ping","id":42}`))...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	c := &rawClient{t: t, conn: conn, r: br}
	_, p := c.mustRead()
	if !bytes.Contains(p, []byte(`"id":42`)) {
		t.Fatalf("got %s, want the reply to the frame sent with the handshake", p)
	}
}

func TestAppendHeaderLengths(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 1 << 20} {
		b := appendFrame(nil, ws.OpText, make([]byte, n))
		h, err := ws.ReadHeader(bytes.NewReader(b))
		if err != nil || h.Length != int64(n) || !h.Fin || h.Masked || h.OpCode != ws.OpText || h.Rsv != 0 {
			t.Fatalf("length %d: header %+v, %v", n, h, err)
		}
		if got := len(b) - ws.HeaderSize(h); got != n {
			t.Fatalf("length %d: %d payload bytes", n, got)
		}
	}
	if got := truncateUTF8("ééé", 5); got != "éé" {
		t.Fatalf("truncateUTF8 = %q", got)
	}
}

// FuzzWSRead feeds arbitrary client bytes to a connection: the reader
// must neither panic nor hang, and everything the server writes must be
// valid server frames.
func FuzzWSRead(f *testing.F) {
	for _, seed := range [][]byte{
		maskedFrame(ws.OpText, true, []byte(`{"op":"ping","id":1}`)),
		append(maskedFrame(ws.OpText, false, []byte(`{"op":`)), maskedFrame(ws.OpContinuation, true, []byte(`"ping","id":2}`))...),
		maskedFrame(ws.OpPing, true, []byte("p")),
		maskedFrame(ws.OpPong, true, make([]byte, 8)),
		maskedFrame(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, "")),
		maskedFrame(ws.OpBinary, true, []byte{0, 1}),
		maskedFrame(ws.OpText, true, []byte(`{"op":"subscribe","id":3,"channel":"user:fuzz"}`)),
		{0x81, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4},
	} {
		f.Add(seed)
	}
	e := setup(f)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	f.Fuzz(func(t *testing.T, in []byte) {
		cli, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		srv, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c := newWSConn(e.gw, srv, nil, "")
		if !e.gw.track(c) {
			t.Fatal("gateway closed")
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.run(&auth.Principal{Subject: "fuzz", Admin: true}, nil)
		}()
		go func() {
			_, _ = cli.Write(in)
			_ = cli.(*net.TCPConn).CloseWrite() // EOF after the input
		}()
		rc := &rawClient{t: t, conn: cli, r: cli}
		for {
			h, p, err := rc.read()
			var perr ws.ProtocolError
			if errors.As(err, &perr) || errors.Is(err, ws.ErrHeaderLengthMSB) {
				t.Fatalf("the server wrote an invalid frame: %v", err)
			}
			if err != nil {
				break // the server closed the connection
			}
			if h.OpCode == ws.OpText && !json.Valid(p) {
				t.Fatalf("the server wrote a text frame that is not JSON: %q", p)
			}
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the connection did not end")
		}
	})
}

// countingConn counts the writes to a socket.
type countingConn struct {
	net.Conn
	writes atomic.Int32
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// TestWSWriterBatchesIntoOneWrite: everything queued when the writer runs
// goes out in one write call (STACK.md: per-connection write syscalls
// dominate the cost of a broadcast).
func TestWSWriterBatchesIntoOneWrite(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingConn{Conn: srv}
	c := newWSConn(e.gw, counted, nil, "")
	if !e.gw.track(c) {
		t.Fatal("gateway closed")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.run(&auth.Principal{Subject: "alice"}, nil)
	}()
	const n = 20
	c.sub.mu.Lock() // the writer starts, but takes the queue only once all n are in
	for i := range n {
		c.sub.q.pushReply(encodeReply(json.RawMessage(strconv.Itoa(i)), nil))
	}
	c.wakeLocked(false)
	c.sub.mu.Unlock()
	rc := &rawClient{t: t, conn: cli, r: cli}
	for i := range n {
		if h, p := rc.mustRead(); h.OpCode != ws.OpText || !bytes.Contains(p, []byte(`"id":`+strconv.Itoa(i))) {
			t.Fatalf("frame %d: %v %s", i, h.OpCode, p)
		}
	}
	if w := counted.writes.Load(); w != 1 {
		t.Fatalf("%d frames took %d writes, want 1", n, w)
	}
	cli.Close()
	<-done
}
