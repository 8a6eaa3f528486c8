package gateway

import (
	"io"
	"syscall"
	"unsafe"
)

// Socket reads and writes of WebSocket connections bypass the runtime's
// syscall bookkeeping (entersyscall/exitsyscall): the socket is
// non-blocking, so each call returns at once, and waiting for room or
// data is left to the netpoller through syscall.RawConn as before.
//
// Why: entering a syscall the ordinary way wakes the runtime's monitor
// thread (sysmon) when it sleeps, because every P was idle; woken so, it
// polls every 20 µs for the next millisecond or more. A server that gets
// a report every 10 ms and is otherwise idle — the common case — paid
// that at every report: sysmon was ~30% of the server's CPU in
// `progressd bench --scenario keepcurrent --clients 1` (docs/benchmarks.md).

// sysRead reads from the non-blocking socket fd into p.
func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

// sysWrite writes p to the non-blocking socket fd.
func sysWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

// rawRead reads into p from raw, waiting on the netpoller (and the
// connection's read deadline) while nothing is there.
func rawRead(raw syscall.RawConn, p []byte) (int, error) {
	var n int
	var errno syscall.Errno
	err := raw.Read(func(fd uintptr) bool {
		for {
			n, errno = sysRead(fd, p)
			if errno != syscall.EINTR {
				return errno != syscall.EAGAIN
			}
		}
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

// rawWrite writes all of p to raw, waiting on the netpoller (and the
// connection's write deadline) while the socket has no room. It returns
// how many bytes were written.
func rawWrite(raw syscall.RawConn, p []byte) (int, error) {
	written := 0
	var errno syscall.Errno
	err := raw.Write(func(fd uintptr) bool {
		for written < len(p) {
			n, e := sysWrite(fd, p[written:])
			switch e {
			case 0:
				written += n
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	})
	if err != nil {
		return written, err
	}
	if errno != 0 {
		return written, errno
	}
	return written, nil
}
