package main

import (
	"fmt"
	"os"
	"strings"
)

// readSecretFile sets *secret, the value of flag --NAME, from the file
// named by --NAME-file (path; "" leaves it alone): the file's contents without surrounding
// whitespace, so `openssl rand -hex 32 > FILE` works as is. A secret on
// the command line is visible to every user of the machine in the process
// list; in a file (or PROGRESSD_<NAME>) it is not.
func readSecretFile(secret *string, name, path string) error {
	if path == "" {
		return nil
	}
	env := "PROGRESSD_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	if *secret != "" {
		return fmt.Errorf("--%s (or %s) and --%s-file are both set; keep one", name, env, name)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--%s-file: %w", name, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return fmt.Errorf("--%s-file %s is empty; put a secret in it: openssl rand -hex 32 > %s", name, path, path)
	}
	*secret = s
	return nil
}
