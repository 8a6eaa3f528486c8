//go:build unix

package loadtest

import "syscall"

// openFilesLimit is this process's soft RLIMIT_NOFILE (Go raises it to the
// hard limit at startup).
func openFilesLimit() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	return uint64(l.Cur), nil
}
