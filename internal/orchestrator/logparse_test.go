package orchestrator

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/progressd/progressd/internal/progress"
)

// FuzzStdoutLogLines drives a stage's stdout path with arbitrary bytes,
// written in arbitrary pieces: the splitter (with a small max, so cut
// lines are common), ParseLine, and the cut to a kept log line. Every
// line must come out as exactly one of progress or a log line; a kept
// line is valid UTF-8 without NUL, at most 4 KiB; the splitter never
// holds more than its max; and no byte of a line within max is lost.
func FuzzStdoutLogLines(f *testing.F) {
	for _, seed := range []string{
		"hello\n50%\nworld\n", "\xff\xfe\x00abc\r\ndef", strings.Repeat("é", 100) + "\n", "{\"progress\":0.5}\n{bad\n",
		strings.Repeat("x", 300), "\n\n\r\r", "a\x00b\n",
	} {
		f.Add([]byte(seed), uint8(7))
	}
	const max = 64
	f.Fuzz(func(t *testing.T, data []byte, piece uint8) {
		check := func(line []byte) {
			text := progress.CutLogText(string(line))
			if !utf8.ValidString(text) || strings.IndexByte(text, 0) >= 0 || len(text) > progress.MaxLogLineBytes {
				t.Fatalf("kept line %q from %q", text, line)
			}
			if len(line) <= max && !bytes.ContainsRune(line, utf8.RuneError) && bytes.IndexByte(line, 0) < 0 && utf8.Valid(line) && text != string(line) {
				t.Fatalf("a short valid line changed: %q -> %q", line, text)
			}
		}
		sp := &lineSplitter{max: max,
			fn: func(line []byte) {
				if len(line) > max {
					t.Fatalf("splitter handed %d bytes, max %d", len(line), max)
				}
				if _, ok := ParseLine(line); !ok {
					check(line)
				}
			},
			onCut: func(line []byte) {
				if len(line) != max {
					t.Fatalf("a cut line of %d bytes, want the first %d", len(line), max)
				}
				check(line)
			},
		}
		step := int(piece%16) + 1
		for len(data) > 0 {
			n := min(step, len(data))
			sp.Write(data[:n])
			if len(sp.buf) > max {
				t.Fatalf("splitter holds %d bytes, max %d", len(sp.buf), max)
			}
			data = data[n:]
		}
		sp.Flush()
	})
}
