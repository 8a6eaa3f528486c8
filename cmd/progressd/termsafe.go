package main

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// termSafe returns s with every character a terminal would act on instead
// of printing made visible as an escape: C0 controls (ESC, CR, BEL, …),
// DEL, C1 controls (U+0080–U+009F, which some terminals take as ESC [ and
// the like), the bidirectional overrides that reorder what is shown, and
// bytes that are not UTF-8 (a lone 0x9B is CSI to an 8-bit terminal).
// Everything the CLI prints that came from a job — messages, errors, stage
// names, project, ids, the server's error messages — goes through it, so a
// job cannot retitle the window, clear the screen or print a fake "job
// succeeded" line. Escapes are JSON's (\n, \u001b), so JSON passed through
// stays valid JSON; a lone invalid byte becomes \xNN.
func termSafe(s string) string {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if unsafeRune(r, size) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s // the common case: nothing to escape, no copy
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case !unsafeRune(r, size):
			b.WriteString(s[i : i+size])
		case size == 1 && r == utf8.RuneError:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += size
	}
	return b.String()
}

// unsafeRune reports whether the rune r (of size bytes) must be escaped.
func unsafeRune(r rune, size int) bool {
	switch {
	case r == utf8.RuneError && size == 1:
		return true
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069: // bidi embeddings, overrides, isolates
		return true
	}
	return false
}
