//go:build !unix

package loadtest

import "errors"

func openFilesLimit() (uint64, error) { return 0, errors.ErrUnsupported }
