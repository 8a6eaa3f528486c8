//go:build !unix

package orchestrator

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Pipelines run commands in process groups, which only Unix systems have.
var errNoGroups = errors.New("running pipeline commands needs a Unix system (Linux, macOS, BSD)")

func groupAttr() *syscall.SysProcAttr { return nil }

func signalGroup(pgid int, sig syscall.Signal) error { return errNoGroups }

func procStartTime(pid int) (string, bool) { return "", false }

func lockFile(f *os.File) error { return nil }

func exitDetail(state *os.ProcessState) string {
	return fmt.Sprintf("exit status %d", state.ExitCode())
}

var (
	sigTerm = syscall.Signal(15)
	sigKill = syscall.Signal(9)
)
