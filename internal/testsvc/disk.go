package testsvc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

// Disk is a small tmpfs of a test's own, which the test can fill up so
// that every write to a file on it fails with ENOSPC — a real full disk,
// not a mock of whatever writes there.
type Disk struct {
	t   testing.TB
	dir string
}

// TinyDisk mounts a tmpfs of size bytes on a temporary directory for t
// and unmounts it when t ends. Mounting needs root (CAP_SYS_ADMIN) on
// Linux; without it t ends as Unavailable says.
func TinyDisk(t testing.TB, size int) *Disk {
	t.Helper()
	if runtime.GOOS != "linux" {
		Unavailable(t, "a tmpfs mount", errors.New("tmpfs needs Linux"))
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		Unavailable(t, "a tmpfs mount (run as root)", err)
	}
	// Registered after TempDir's cleanup, so it runs before it.
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount the test's tmpfs %s: %v", dir, err)
		}
	})
	return &Disk{t: t, dir: dir}
}

// Dir is where the disk is mounted.
func (d *Disk) Dir() string { return d.dir }

// fillerName is the file Fill writes.
const fillerName = ".filler"

// Fill writes a file that takes all the space left, so the next write
// that needs space fails with "no space left on device".
func (d *Disk) Fill() {
	d.t.Helper()
	f, err := os.OpenFile(filepath.Join(d.dir, fillerName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.t.Fatalf("fill %s: %v", d.dir, err)
	}
	defer f.Close()
	block := make([]byte, 4096)
	for range 1 << 20 { // bounded: 4 GiB, far more than any test disk
		if _, err := f.Write(block); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				// A block may fit partly: fill what is left byte by byte.
				for range len(block) {
					if _, err := f.Write(block[:1]); err != nil {
						return
					}
				}
				return
			}
			d.t.Fatalf("fill %s: %v", d.dir, err)
		}
	}
	d.t.Fatalf("fill %s: the disk never filled up", d.dir)
}

// Free removes what Fill wrote.
func (d *Disk) Free() {
	d.t.Helper()
	if err := os.Remove(filepath.Join(d.dir, fillerName)); err != nil {
		d.t.Fatalf("free %s: %v", d.dir, err)
	}
}
