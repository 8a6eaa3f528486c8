package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// command is one run of a stage's command.
type command struct {
	argv    []string
	env     []string // appended to the server's environment
	timeout time.Duration
	// grace is how long the process group has between SIGTERM and SIGKILL.
	grace time.Duration
	// onLine gets every stdout line, on the reading goroutine; onCutLine
	// gets the first MaxLineBytes of a longer one (too long to be
	// progress), onErrLine every stderr line (its first
	// stderrKeepBytes). Each may be nil.
	onLine, onCutLine, onErrLine func([]byte)
	// onStart and onEnd bracket the life of the process group, so a
	// record of it survives a crash of this process (see recover.go).
	onStart func(pgid int)
	onEnd   func()
}

// commandResult is how a command ended.
type commandResult struct {
	startErr error  // the command could not start; nothing else is set
	exit     string // "exit status 1", "killed by signal 9 (killed)"
	ok       bool   // exited 0
	timedOut bool   // the timeout ran out and the group was stopped
	canceled bool   // ctx ended and the group was stopped
	stderr   *tail
}

// run starts the command in a process group of its own and waits for it.
// When ctx ends or the timeout passes, the whole group gets SIGTERM, and
// SIGKILL after the grace period. When the command's own process exits,
// anything it left running in its group is killed: a stage leaves no
// processes behind. stdout is parsed line by line as it comes; the last
// lines of stderr are kept for the error message.
//
// Output goes through pipes this process reads directly (no exec copying
// goroutines), so a background child holding stdout open cannot delay
// noticing that the command exited.
func (c *command) run(ctx context.Context) commandResult {
	res := commandResult{stderr: newTail(stderrLines)}
	if ctx.Err() != nil { // stopped before it started: start nothing
		res.canceled = true
		res.exit = "not started"
		return res
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		res.startErr = err
		return res
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		res.startErr = err
		return res
	}
	cmd := exec.Command(c.argv[0], c.argv[1:]...)
	cmd.Env = append(serverEnv(), c.env...)
	cmd.Stdout, cmd.Stderr = outW, errW // stdin is /dev/null
	cmd.SysProcAttr = groupAttr()
	err = cmd.Start()
	outW.Close() // the child has its copies
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		res.startErr = err
		return res
	}
	pgid := cmd.Process.Pid
	if c.onStart != nil {
		c.onStart(pgid)
	}

	var readers sync.WaitGroup
	readers.Go(func() {
		copyLines(outR, &lineSplitter{max: MaxLineBytes, fn: orNop(c.onLine), onCut: c.onCutLine})
	})
	readers.Go(func() {
		onErr := orNop(c.onErrLine)
		copyLines(errR, &lineSplitter{max: stderrKeepBytes, truncate: true, fn: func(line []byte) {
			res.stderr.add(line)
			onErr(line)
		}})
	})
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var timeout <-chan time.Time
	if c.timeout > 0 {
		t := time.NewTimer(c.timeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-exited:
	case <-ctx.Done():
		res.canceled = true
		grace := c.grace
		if f, ok := errors.AsType[fencedError](context.Cause(ctx)); ok {
			grace = min(grace, f.grace) // the fence's deadline (shared.go)
		}
		c.stop(pgid, exited, grace)
	case <-timeout:
		res.timedOut = true
		c.stop(pgid, exited, c.grace)
	}
	// The command is gone; what it left in its group goes too.
	_ = signalGroup(pgid, sigKill)
	if c.onEnd != nil {
		c.onEnd()
	}

	// The pipes reach EOF once every holder has exited. A process that
	// left the group (setsid) may hold them on: stop reading after the
	// grace period rather than wait for it.
	drained := make(chan struct{})
	go func() {
		readers.Wait()
		close(drained)
	}()
	t := time.NewTimer(max(c.grace, 100*time.Millisecond))
	select {
	case <-drained:
	case <-t.C:
		outR.Close() // unblocks the readers
		errR.Close()
		<-drained
	}
	t.Stop()
	outR.Close()
	errR.Close()

	res.exit = exitDetail(cmd.ProcessState)
	res.ok = cmd.ProcessState.Success()
	return res
}

// stop sends SIGTERM to the group, then SIGKILL if the command has not
// exited after grace, and returns once it has exited.
func (c *command) stop(pgid int, exited <-chan error, grace time.Duration) {
	_ = signalGroup(pgid, sigTerm)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-exited:
		return
	case <-t.C:
	}
	_ = signalGroup(pgid, sigKill)
	<-exited
}

// serverEnv is the server's environment without any PROGRESSD_ variable:
// those are the server's own settings (PROGRESSD_DB and PROGRESSD_REDIS
// with their passwords, PROGRESSD_AUTH_SECRET, …), and a stage, which runs
// with only a token scoped to its job, must not inherit them. The runner
// then adds the PROGRESSD_ variables it sets for the stage (jobEnv).
func serverEnv() []string {
	env := os.Environ()
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PROGRESSD_") {
			out = append(out, kv)
		}
	}
	return out
}

func copyLines(r io.Reader, s *lineSplitter) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			_, _ = s.Write(buf[:n])
		}
		if err != nil { // io.EOF, or the pipe closed by run
			break
		}
	}
	s.Flush()
}

// describe turns a result into the error of a failed stage, or nil.
func (res *commandResult) describe(st *Stage) error {
	switch {
	case res.startErr != nil:
		return fmt.Errorf("stage %s could not start: %v", st.Name, res.startErr)
	case res.timedOut:
		return fmt.Errorf("stage %s timed out after %s", st.Name, st.timeoutString())
	case res.ok:
		return nil
	}
	msg := fmt.Sprintf("stage %s failed: %s", st.Name, res.exit)
	if last := res.stderr.Last(); last != "" {
		msg += ": " + tidy(last, 300)
	}
	return errors.New(msg)
}

// orNop returns fn, or a function that does nothing for nil.
func orNop(fn func([]byte)) func([]byte) {
	if fn == nil {
		return func([]byte) {}
	}
	return fn
}
