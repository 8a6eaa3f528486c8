package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The floor measures what this machine charges a server for the work of
// `progressd bench` with no progressd in it: bare programs that do only
// the system calls a delivery or an HTTP report cannot avoid, against a
// reader in another process, as the bench's clients are. It is the
// yardstick for the bench's "server CPU per 100k" figures (see
// docs/benchmarks.md): a figure below its floor is not reachable on this
// machine by any server that writes each delivery to its socket. On
// loopback the receiving side's TCP work runs in the writer's system
// call, so it is charged to the server, as it is in the bench.
//
// The reading side is another process: this program again, started by a
// FloorPeer with a spec that RunFloorPeer understands (the test binary's
// TestMain and `progressd bench`'s hidden --floor-peer flag both call it).

// FloorPeer starts the other process of a floor measurement, which must
// call RunFloorPeer(spec).
type FloorPeer func(spec string) *exec.Cmd

// Floor is one floor measurement.
type Floor struct {
	// What was measured, in words.
	What string `json:"what"`
	// ServerPer100k is the writing (serving) process's CPU seconds per
	// 100,000 writes or reports; PeerPer100k the reading process's.
	ServerPer100k float64 `json:"server_cpu_seconds_per_100k"`
	PeerPer100k   float64 `json:"peer_cpu_seconds_per_100k,omitempty"`
	// RoundP50 and RoundP99 (fan-out): how long one round of writes took
	// from its start until the last write returned — the least a fan-out
	// update's latency can be here.
	RoundP50 time.Duration `json:"round_p50_ns,omitempty"`
	RoundP99 time.Duration `json:"round_p99_ns,omitempty"`
}

// floorPayload is about the size of a snapshot frame.
var floorPayload = bytes.Repeat([]byte("x"), 300)

// FloorFanout writes payload (nil: 300 bytes) to each of conns
// connections rate times a second for rounds rounds, each connection's
// writes made by a goroutine of its own that is woken for it (as the
// gateway's writers are), and measures both processes' CPU.
func FloorFanout(ctx context.Context, peer FloorPeer, conns, rate, rounds int, payload []byte) (Floor, error) {
	if payload == nil {
		payload = floorPayload
	}
	f := Floor{What: fmt.Sprintf("%d connections × %d writes/s of %d bytes, bare goroutine per connection", conns, rate, len(payload))}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return f, err
	}
	defer ln.Close()
	cmd := peer("read " + ln.Addr().String() + " " + strconv.Itoa(conns))
	if err := cmd.Start(); err != nil {
		return f, fmt.Errorf("start the floor's reading process: %w", err)
	}
	peerDone := waitCmd(cmd)
	cs := make([]net.Conn, 0, conns)
	defer func() {
		for _, c := range cs {
			c.Close()
		}
		_ = cmd.Process.Kill()
		<-peerDone
	}()
	for range conns {
		c, err := ln.Accept()
		if err != nil {
			return f, err
		}
		cs = append(cs, c)
	}
	wakes := make([]chan struct{}, conns)
	var writers, round sync.WaitGroup
	var writeErr error
	var errOnce sync.Once
	for i, c := range cs {
		wake := make(chan struct{}, 1)
		wakes[i] = wake
		writers.Go(func() {
			for range wake {
				if _, err := c.Write(payload); err != nil {
					errOnce.Do(func() { writeErr = err })
				}
				round.Done()
			}
		})
	}
	defer func() {
		for _, w := range wakes {
			close(w)
		}
		writers.Wait()
	}()
	took := make([]time.Duration, 0, rounds)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	before, err := cpuOf(os.Getpid(), cmd.Process.Pid)
	if err != nil {
		return f, err
	}
	for range rounds {
		select {
		case <-ctx.Done():
			return f, ctx.Err()
		case <-tick.C:
		}
		start := time.Now()
		round.Add(len(wakes))
		for _, w := range wakes {
			w <- struct{}{}
		}
		round.Wait()
		took = append(took, time.Since(start))
	}
	after, err := cpuOf(os.Getpid(), cmd.Process.Pid)
	if err != nil {
		return f, err
	}
	if writeErr != nil {
		return f, writeErr
	}
	writes := float64(len(took) * conns)
	f.ServerPer100k = (after[0] - before[0]).Seconds() / writes * 1e5
	f.PeerPer100k = (after[1] - before[1]).Seconds() / writes * 1e5
	slices.Sort(took)
	f.RoundP50, f.RoundP99 = took[len(took)/2], took[len(took)*99/100]
	return f, nil
}

// FloorHTTP sends n HTTP reports over eight keep-alive connections to a
// bare net/http server whose handler reads the body, writes 300 bytes to
// one subscriber socket and answers 300 bytes: the least a report that
// reaches one WebSocket client costs. Floor.ServerPer100k is the server's
// CPU (this process's) per 100,000 reports.
func FloorHTTP(ctx context.Context, peer FloorPeer, n int) (Floor, error) {
	f := Floor{What: "one report per HTTP request to a bare net/http handler that reads it, writes 300 bytes to one subscriber and answers 300 bytes"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return f, err
	}
	defer ln.Close()
	subLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return f, err
	}
	defer subLn.Close()
	cmd := peer("http " + subLn.Addr().String() + " http://" + ln.Addr().String() + " " + strconv.Itoa(n))
	if err := cmd.Start(); err != nil {
		return f, fmt.Errorf("start the floor's reporting process: %w", err)
	}
	peerDone := waitCmd(cmd)
	defer func() { _ = cmd.Process.Kill(); <-peerDone }()
	sub, err := subLn.Accept()
	if err != nil {
		return f, err
	}
	defer sub.Close()
	var mu sync.Mutex
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		_, err := sub.Write(floorPayload)
		mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(floorPayload)
	})}
	before, err := ReadProc(os.Getpid())
	if err != nil {
		return f, err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var peerErr error
	select {
	case peerErr = <-peerDone:
		peerDone = closedErr(peerErr)
	case <-ctx.Done():
		peerErr = ctx.Err()
	}
	after, err := ReadProc(os.Getpid())
	_ = srv.Close()
	<-served
	if peerErr != nil {
		return f, fmt.Errorf("the floor's reporting process: %w", peerErr)
	}
	if err != nil {
		return f, err
	}
	f.ServerPer100k = (after.CPU - before.CPU).Seconds() / float64(n) * 1e5
	return f, nil
}

// cpuOf reads the CPU time of each process.
func cpuOf(pids ...int) ([]time.Duration, error) {
	out := make([]time.Duration, len(pids))
	for i, pid := range pids {
		p, err := ReadProc(pid)
		if err != nil {
			return nil, err
		}
		out[i] = p.CPU
	}
	return out, nil
}

// waitCmd waits for cmd in the background; the channel gets its result.
func waitCmd(cmd *exec.Cmd) chan error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return done
}

// closedErr is a channel that yields err for ever after.
func closedErr(err error) chan error {
	c := make(chan error, 1)
	c <- err
	return c
}

// floorTimeout bounds a peer process: it ends even if the measurement
// that started it never closes its connections.
const floorTimeout = 10 * time.Minute

// RunFloorPeer is the other process of a floor measurement; it returns
// the process's exit code. "read ADDR N" opens N connections to ADDR and
// reads each until EOF; "http SUBADDR URL N" reads the subscriber socket
// SUBADDR while eight keep-alive connections POST N reports to URL.
func RunFloorPeer(spec string) int {
	time.AfterFunc(floorTimeout, func() {
		fmt.Fprintln(os.Stderr, "floor peer: still running after", floorTimeout)
		os.Exit(3)
	})
	f := strings.Fields(spec)
	if len(f) < 3 {
		fmt.Fprintf(os.Stderr, "floor peer: bad spec %q\n", spec)
		return 2
	}
	n, _ := strconv.Atoi(f[len(f)-1])
	var wg sync.WaitGroup
	drain := func(addr string) error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		wg.Go(func() {
			defer c.Close()
			_, _ = io.Copy(io.Discard, c)
		})
		return nil
	}
	switch {
	case f[0] == "read" && len(f) == 3:
		for range n {
			if err := drain(f[1]); err != nil {
				fmt.Fprintln(os.Stderr, "floor peer:", err)
				return 1
			}
		}
		wg.Wait()
		return 0
	case f[0] == "http" && len(f) == 4:
		if err := drain(f[1]); err != nil {
			fmt.Fprintln(os.Stderr, "floor peer:", err)
			return 1
		}
		if err := floorReports(f[2], n); err != nil {
			fmt.Fprintln(os.Stderr, "floor peer:", err)
			return 1
		}
		return 0 // the subscriber reader ends with the process
	}
	fmt.Fprintf(os.Stderr, "floor peer: bad spec %q\n", spec)
	return 2
}

// floorReports POSTs n reports to base over eight keep-alive connections.
func floorReports(base string, n int) error {
	const publishers = 8
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: publishers}}
	body := []byte(`{"progress":0.5,"message":"step 10 of 20","sent_at_ns":1790000000000000000}`)
	var pubs sync.WaitGroup
	failed := make(chan error, publishers)
	for p := range publishers {
		pubs.Go(func() {
			for i := p; i < n; i += publishers {
				resp, err := hc.Post(base+"/api/v1/jobs/j/progress", "application/json", bytes.NewReader(body))
				if err != nil {
					failed <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	pubs.Wait()
	select {
	case err := <-failed:
		return err
	default:
	}
	return nil
}

// ExecFloorPeer is a FloorPeer that runs exe with args plus the spec as
// its last argument, its output to stderr.
func ExecFloorPeer(exe string, args ...string) FloorPeer {
	return func(spec string) *exec.Cmd {
		cmd := exec.Command(exe, append(slices.Clone(args), spec)...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		return cmd
	}
}
