package gateway

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection and the
// server end's RawConn.
func tcpPair(t *testing.T) (server *net.TCPConn, raw syscall.RawConn, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	server = c.(*net.TCPConn)
	raw, err = server.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, raw, client
}

// The raw reads and writes keep what net.Conn's give the reader and
// writer: the bytes, io.EOF at the peer's close, the deadline error, and
// net.ErrClosed once the socket is closed.
func TestRawReadWrite(t *testing.T) {
	t.Run("ReadsThenEOF", func(t *testing.T) {
		_, raw, client := tcpPair(t)
		go func() {
			client.Write([]byte("hello"))
			client.Close()
		}()
		got, err := io.ReadAll(readerFunc(func(p []byte) (int, error) { return rawRead(raw, p) }))
		if err != nil || string(got) != "hello" {
			t.Fatalf("read %q, %v; want hello and EOF", got, err)
		}
	})
	t.Run("ReadDeadline", func(t *testing.T) {
		server, raw, _ := tcpPair(t)
		server.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, err := rawRead(raw, make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("err %v, want the deadline's", err)
		}
	})
	t.Run("ReadAfterClose", func(t *testing.T) {
		server, raw, _ := tcpPair(t)
		server.Close()
		if _, err := rawRead(raw, make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("err %v, want net.ErrClosed", err)
		}
	})
	t.Run("WriteWaitsForRoom", func(t *testing.T) {
		server, raw, client := tcpPair(t)
		server.SetWriteBuffer(16 << 10)
		want := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB: many times the buffer
		got := make(chan []byte)
		go func() {
			b, _ := io.ReadAll(client)
			got <- b
		}()
		n, err := rawWrite(raw, want)
		if err != nil || n != len(want) {
			t.Fatalf("wrote %d, %v; want %d", n, err, len(want))
		}
		server.Close()
		if b := <-got; !bytes.Equal(b, want) {
			t.Fatalf("peer read %d bytes, not the %d written", len(b), len(want))
		}
	})
	t.Run("WriteDeadline", func(t *testing.T) {
		server, raw, _ := tcpPair(t) // the peer reads nothing
		server.SetWriteBuffer(16 << 10)
		server.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		b := make([]byte, 16<<20)
		n, err := rawWrite(raw, b)
		if !errors.Is(err, os.ErrDeadlineExceeded) || n <= 0 || n >= len(b) {
			t.Fatalf("wrote %d of %d, %v; want part of it and the deadline's error", n, len(b), err)
		}
	})
	t.Run("WriteToReset", func(t *testing.T) {
		_, raw, client := tcpPair(t)
		client.(*net.TCPConn).SetLinger(0)
		client.Close() // a reset: writes fail with an errno, not a wait
		var err error
		for i := 0; i < 100 && err == nil; i++ {
			_, err = rawWrite(raw, make([]byte, 64<<10))
			time.Sleep(time.Millisecond)
		}
		if err == nil {
			t.Fatal("writes to a reset connection kept succeeding")
		}
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
