// Command progressd shows people the live progress of long-running jobs.
// `progressd serve` runs the server; the other commands talk to one.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "progressd:", err)
		os.Exit(exitCode(err))
	}
}
