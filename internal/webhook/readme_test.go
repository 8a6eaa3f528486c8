package webhook_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/webhook"
)

// readmeBlock returns the fenced block of README.md's Webhooks section
// that starts with "```"+lang.
func readmeBlock(t *testing.T, lang string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(b), "\n## Webhooks\n")
	_, block, ok := strings.Cut(section, "\n```"+lang+"\n")
	block, _, ok2 := strings.Cut(block, "\n```\n")
	if !ok || !ok2 {
		t.Fatalf("README.md's Webhooks section has no ```%s block", lang)
	}
	if n := strings.Count(block, "\n") + 1; n > 12 {
		t.Errorf("the %s verify example is %d lines; keep it about ten", lang, n)
	}
	return block
}

// TestREADMEVerifyExamples runs README.md's Python and Go verify
// functions on an event signed by progressd: each accepts it, and refuses
// it with one byte of the body changed or with a t 6 minutes old.
func TestREADMEVerifyExamples(t *testing.T) {
	secret := "0123456789abcdef-readme"
	body := `{"id":"0193","type":"job.succeeded","job":{"job_id":"j","message":"ünïcode \u0000"}}`
	now := time.Now()
	cases := []string{
		webhook.Sign(secret, now, []byte(body)) + " " + body + " true",
		webhook.Sign(secret, now, []byte(body)) + " " + strings.Replace(body, "j", "k", 1) + " false",
		webhook.Sign(secret, now.Add(-6*time.Minute), []byte(body)) + " " + body + " false",
	}
	dir := t.TempDir()

	t.Run("python", func(t *testing.T) {
		py, err := exec.LookPath("python3")
		if err != nil {
			t.Skip("no python3")
		}
		prog := readmeBlock(t, "python") + `
import sys
for line in sys.stdin.read().split("\n"):
    if line:
        header, rest = line.split(" ", 1)
        body, want = rest.rsplit(" ", 1)
        got = verify(sys.argv[1].encode(), header, body.encode())
        print("ok" if str(got).lower() == want else "WRONG: %s -> %s" % (line, got))
`
		run(t, exec.Command(py, "-c", prog, secret), cases)
	})
	t.Run("go", func(t *testing.T) {
		src := "package main\n\nimport (\n\t\"bufio\"\n\t\"crypto/hmac\"\n\t\"crypto/sha256\"\n\t\"encoding/hex\"\n\t\"fmt\"\n\t\"os\"\n\t\"strconv\"\n\t\"strings\"\n\t\"time\"\n)\n\n" +
			readmeBlock(t, "go") + `

func main() {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		header, rest, _ := strings.Cut(sc.Text(), " ")
		body, want := rest[:strings.LastIndex(rest, " ")], rest[strings.LastIndex(rest, " ")+1:]
		if got := verify([]byte(os.Args[1]), header, []byte(body)); strconv.FormatBool(got) == want {
			fmt.Println("ok")
		} else {
			fmt.Println("WRONG:", sc.Text(), got)
		}
	}
}
`
		file := filepath.Join(dir, "verify.go")
		if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		run(t, exec.Command("go", "run", file, secret), cases)
	})
}

func run(t *testing.T, cmd *exec.Cmd, cases []string) {
	t.Helper()
	cmd.Stdin = strings.NewReader(strings.Join(cases, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args[:2], err, out)
	}
	if got := strings.TrimSpace(string(out)); got != strings.TrimSpace(strings.Repeat("ok\n", len(cases))) {
		t.Fatalf("%s", got)
	}
}
