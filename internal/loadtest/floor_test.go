package loadtest

import (
	"bytes"
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
	"testing"
	"time"
)

// The floor benchmarks measure what this machine charges a server for the
// work of `progressd bench` with no progressd in it: bare programs that do
// only the syscalls a delivery or an HTTP report cannot avoid, against a
// reader in another process, as the bench's clients are. They are the
// yardstick for the bench's "server CPU per 100k" figures (see
// docs/benchmarks.md): a figure below its floor is not reachable on this
// machine by any server that writes each delivery to its socket.
//
//	go test -run '^$' -bench Floor -benchtime 20x ./internal/loadtest
//
// On loopback the receiving side's TCP work runs in the writer's system
// call, so it is charged to the server, as it is in the bench.

// floorEnv makes the test binary the reading side of a floor benchmark:
// "MODE ADDR N".
const floorEnv = "LOADTEST_FLOOR_PEER"

// floorPayload is about the size of a snapshot frame.
var floorPayload = bytes.Repeat([]byte("x"), 300)

// BenchmarkFloorWriteSize is BenchmarkFloorFanoutWrites' 1,000 × 100/s
// with 1-byte and 3,000-byte messages: what a write costs hardly depends
// on its size, so only fewer writes would lower the floor.
//
//	go test -run '^$' -bench FloorWriteSize -benchtime 10x ./internal/loadtest
func BenchmarkFloorWriteSize(b *testing.B) {
	for _, size := range []int{1, 3000} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			floorFanout(b, 1000, 100, bytes.Repeat([]byte("x"), size))
		})
	}
}

// BenchmarkFloorFanoutWrites is the bench's fanout scenario with nothing
// but the writes: each op is one second of R rounds, a round writing one
// 300-byte message to each of C connections, each connection's writes
// made by a goroutine of its own that is woken for it (as the gateway's
// writers are). Metrics: server-s/100k and peer-s/100k, the writing and
// the reading process's CPU time per 100,000 writes; round-p50-ms and
// round-p99-ms, how long a round takes from its start until its last
// write returned — the least a fanout update's p99 latency can be here.
//
//	go test -run '^$' -bench FloorFanout -benchtime 20x ./internal/loadtest
func BenchmarkFloorFanoutWrites(b *testing.B) {
	for _, sc := range []struct{ conns, rate int }{{1000, 100}, {10000, 10}} {
		b.Run(fmt.Sprintf("%dx%d", sc.conns, sc.rate), func(b *testing.B) {
			floorFanout(b, sc.conns, sc.rate, floorPayload)
		})
	}
}

// floorFanout writes payload to each of conns connections rate times a
// second, b.N seconds, and reports the floor metrics.
func floorFanout(b *testing.B, conns, rate int, payload []byte) {
	ln := listenLoopback(b)
	peer := startFloorPeer(b, "read", ln.Addr().String(), conns)
	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		cs[i] = c
	}
	wakes := make([]chan struct{}, conns)
	var writers, round sync.WaitGroup
	for i, c := range cs {
		wake := make(chan struct{}, 1)
		wakes[i] = wake
		writers.Go(func() {
			for range wake {
				if _, err := c.Write(payload); err != nil {
					b.Error(err)
				}
				round.Done()
			}
		})
	}
	rounds := make([]time.Duration, 0, b.N*rate)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	before, peerBefore := selfCPU(b), procCPU(b, peer.Process.Pid)
	b.ResetTimer()
	for range b.N * rate {
		<-tick.C
		start := time.Now()
		round.Add(len(wakes))
		for _, w := range wakes {
			w <- struct{}{}
		}
		round.Wait()
		rounds = append(rounds, time.Since(start))
	}
	b.StopTimer()
	used, peerUsed := selfCPU(b)-before, procCPU(b, peer.Process.Pid)-peerBefore
	for _, w := range wakes {
		close(w)
	}
	writers.Wait()
	writes := float64(len(rounds) * conns)
	b.ReportMetric(used.Seconds()/writes*1e5, "server-s/100k")
	b.ReportMetric(peerUsed.Seconds()/writes*1e5, "peer-s/100k")
	slices.Sort(rounds)
	b.ReportMetric(float64(rounds[len(rounds)/2])/1e6, "round-p50-ms")
	b.ReportMetric(float64(rounds[len(rounds)*99/100])/1e6, "round-p99-ms")
	for _, c := range cs {
		c.Close()
	}
	waitPeer(b, peer)
}

// BenchmarkFloorHTTPReport is 1,000 HTTP reports per op to a bare net/http
// server whose handler reads the body, writes 300 bytes to one subscriber
// socket and answers 300 bytes: the least a report that reaches one
// WebSocket client costs. Eight keep-alive connections send the reports,
// as the bench's publishers do. server-s/100k is the server process's CPU
// time per 100,000 reports.
//
//	go test -run '^$' -bench FloorHTTP -benchtime 100x ./internal/loadtest
func BenchmarkFloorHTTPReport(b *testing.B) {
	ln := listenLoopback(b)
	subLn := listenLoopback(b)
	const perOp = 1000
	peer := startFloorPeer(b, "http "+subLn.Addr().String(), "http://"+ln.Addr().String(), b.N*perOp)
	sub, err := subLn.Accept()
	if err != nil {
		b.Fatal(err)
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
	before := selfCPU(b)
	b.ResetTimer()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	waitPeer(b, peer)
	b.StopTimer()
	used := selfCPU(b) - before
	b.ReportMetric(used.Seconds()/float64(b.N*perOp)*1e5, "server-s/100k")
	_ = srv.Close()
	<-served
}

func listenLoopback(b *testing.B) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	return ln
}

func selfCPU(b *testing.B) time.Duration { return procCPU(b, os.Getpid()) }

func procCPU(b *testing.B, pid int) time.Duration {
	s, err := ReadProc(pid)
	if err != nil {
		b.Fatal(err)
	}
	return s.CPU
}

// startFloorPeer starts this test binary as the other side of a floor
// benchmark (floorPeer).
func startFloorPeer(b *testing.B, mode, addr string, n int) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), floorEnv+"="+mode+" "+addr+" "+strconv.Itoa(n))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return cmd
}

func waitPeer(b *testing.B, cmd *exec.Cmd) {
	if err := cmd.Wait(); err != nil {
		b.Fatalf("the floor benchmark's peer process: %v", err)
	}
}

// floorTimeout bounds a peer process: it ends even if the benchmark that
// started it never closes its connections.
const floorTimeout = 10 * time.Minute

// floorPeer is the other process of a floor benchmark, run by TestMain.
// "read ADDR N" opens N connections to ADDR and reads each until EOF;
// "http SUBADDR URL N" reads the subscriber socket SUBADDR while eight
// keep-alive connections POST N reports to URL.
func floorPeer(spec string) int {
	time.AfterFunc(floorTimeout, func() {
		fmt.Fprintln(os.Stderr, "floor peer: still running after", floorTimeout)
		os.Exit(3)
	})
	f := strings.Fields(spec)
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
		const publishers = 8
		hc := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: publishers}}
		body := []byte(`{"progress":0.5,"message":"step 10 of 20","sent_at_ns":1790000000000000000}`)
		var pubs sync.WaitGroup
		failed := make(chan error, publishers)
		for p := range publishers {
			pubs.Go(func() {
				for i := p; i < n; i += publishers {
					resp, err := hc.Post(f[2]+"/api/v1/jobs/j/progress", "application/json", bytes.NewReader(body))
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
			fmt.Fprintln(os.Stderr, "floor peer:", err)
			return 1
		default:
		}
		return 0 // the subscriber reader ends with the process
	}
	fmt.Fprintf(os.Stderr, "floor peer: bad %s=%q\n", floorEnv, spec)
	return 2
}
