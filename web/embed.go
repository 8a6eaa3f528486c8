// Package web holds the browser side of progressd. Its built files (dist/)
// are committed and embedded in the binary, so `go install` needs nothing
// but Go; CI rebuilds them and fails if they differ from the committed ones.
package web

import (
	"embed"
	"io/fs"
)

//go:embed all:dist
var dist embed.FS

// Dist returns the built files, rooted at dist/.
func Dist() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // dist is embedded at build time; it cannot be missing
	}
	return sub
}
