package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is the release this binary is; a release build sets it with
// -ldflags "-X main.version=v1.2.3". Without it, the module version from
// the build info ("(devel)" for a build from a checkout) and the commit
// stand in.
var version = ""

// buildInfo is what `progressd version` prints.
type buildInfo struct {
	Version  string `json:"version"`
	Commit   string `json:"commit,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if info, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" {
			b.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Commit = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if b.Version == "" {
		b.Version = "(devel)"
	}
	return b
}

func newVersion() *cobra.Command {
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of this progressd binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.check("text"); err != nil {
				return err
			}
			b := readBuildInfo()
			if out.json() {
				return writeJSON(cmd.OutOrStdout(), b)
			}
			line := "progressd " + b.Version
			if b.Commit != "" {
				line += " commit " + b.Commit
				if b.Modified {
					line += " (modified)"
				}
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s\n", line, b.Go, b.Platform)
			return err
		},
	}
	out.add(cmd, "text")
	return cmd
}
