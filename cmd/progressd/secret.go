package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// readSecretFile sets *secret from the file named by --auth-secret-file
// (path; "" leaves it alone): the file's contents without surrounding
// whitespace, so `openssl rand -hex 32 > FILE` works as is. A secret on
// the command line is visible to every user of the machine in the process
// list; in a file (or PROGRESSD_AUTH_SECRET) it is not.
func readSecretFile(secret *string, path string) error {
	if path == "" {
		return nil
	}
	if *secret != "" {
		return errors.New("--auth-secret (or PROGRESSD_AUTH_SECRET) and --auth-secret-file are both set; keep one")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--auth-secret-file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return fmt.Errorf("--auth-secret-file %s is empty; put a secret in it: openssl rand -hex 32 > %s", path, path)
	}
	*secret = s
	return nil
}
