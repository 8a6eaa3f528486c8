// Command progressd shows people the live progress of long-running jobs.
// `progressd serve` runs the server; the other commands talk to one.
package main

import (
	"fmt"
	"os"
	"strings"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, errorText(err))
		os.Exit(exitCode(err))
	}
}

// errorText is how the command prints err. Errors quote the server and job
// data (messages, stage names): they must never drive the terminal. Line
// breaks stay (a refused configuration lists one setting a line); job data
// quoted in an error is escaped whole where it is quoted (followJob).
func errorText(err error) string {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		lines[i] = termSafe(l)
	}
	return "progressd: " + strings.Join(lines, "\n")
}
