package loadtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/progressd/progressd/internal/progress"
)

func TestHistogramEmpty(t *testing.T) {
	t.Parallel()
	h := NewHistogram()
	if s := h.Stats(); s != (LatencyStats{}) {
		t.Errorf("empty stats = %+v, want zero", s)
	}
}

func TestHistogramSmallValuesAreExact(t *testing.T) {
	t.Parallel()
	h := NewHistogram()
	for v := 100; v >= 1; v-- { // order must not matter
		h.Record(time.Duration(v))
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0, 1}, {0.01, 1}, {0.5, 50}, {0.9, 90}, {0.99, 99}, {1, 100}} {
		if got := h.Quantile(tc.q); got != tc.want {
			t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if h.Count() != 100 || h.Max() != 100 || h.Mean() != 50 { // 5050/100 truncated
		t.Errorf("count %d max %v mean %v", h.Count(), h.Max(), h.Mean())
	}
}

// TestHistogramQuantilesWithinOnePercent checks every reported quantile
// against the exact answer from a sorted slice.
func TestHistogramQuantilesWithinOnePercent(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	h := NewHistogram()
	samples := make([]time.Duration, 200_000)
	for i := range samples {
		// log-uniform from 1 µs to 10 s, like latencies
		d := time.Duration(math.Exp(math.Log(1e3) + rng.Float64()*(math.Log(1e10)-math.Log(1e3))))
		samples[i] = d
		h.Record(d)
	}
	slices.Sort(samples)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 0.9999} {
		exact := samples[int(math.Ceil(q*float64(len(samples))))-1]
		got := h.Quantile(q)
		if got < exact || float64(got-exact) > float64(exact)/histSub {
			t.Errorf("Quantile(%v) = %v, exact %v: off by more than 1/%d", q, got, exact, histSub)
		}
	}
	if h.Max() != samples[len(samples)-1] {
		t.Errorf("Max = %v, want %v", h.Max(), samples[len(samples)-1])
	}
}

func TestHistogramBuckets(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	check := func(v uint64) {
		i := bucketOf(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d, out of range", v, i)
		}
		if hi := bucketHigh(i); hi < v {
			t.Errorf("bucketHigh(bucketOf(%d)) = %d < v", v, hi)
		}
		if i > 0 && bucketHigh(i-1) >= v {
			t.Errorf("bucket %d below %d's already holds it (high %d)", i-1, v, bucketHigh(i-1))
		}
	}
	for v := range uint64(5000) {
		check(v)
	}
	for range 100_000 {
		check(rng.Uint64() >> rng.UintN(64))
	}
	check(math.MaxInt64)
	check(math.MaxUint64)
}

func TestHistogramConcurrentRecordAndMerge(t *testing.T) {
	t.Parallel()
	shards := []*Histogram{NewHistogram(), NewHistogram(), NewHistogram()}
	var wg sync.WaitGroup
	for g := range 12 {
		wg.Go(func() {
			for i := range 1000 {
				shards[g%len(shards)].Record(time.Duration(i) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	all := NewHistogram()
	for _, s := range shards {
		all.Merge(s)
	}
	if all.Count() != 12_000 {
		t.Fatalf("Count = %d, want 12000", all.Count())
	}
	if all.Max() != 999*time.Microsecond || all.Quantile(0) != 0 {
		t.Errorf("max %v min %v", all.Max(), all.Quantile(0))
	}
	if p50 := all.Quantile(0.5); p50 < 499*time.Microsecond || p50 > 504*time.Microsecond {
		t.Errorf("p50 = %v, want about 499µs", p50)
	}
}

func TestHistogramNegativeIsZero(t *testing.T) {
	t.Parallel()
	h := NewHistogram()
	h.Record(-time.Second)
	if h.Max() != 0 || h.Count() != 1 {
		t.Errorf("max %v count %d", h.Max(), h.Count())
	}
}

func TestAccount(t *testing.T) {
	t.Parallel()
	pub := []uint64{11, 12, 13, 14, 15}
	tests := []struct {
		name      string
		published []uint64
		final     uint64
		r         receipt
		want      tally
	}{
		{"every one delivered", pub, 15, receipt{received: 5, maxSeq: 15},
			tally{delivered: 5, gotFinal: true}},
		{"gaps before the final are coalesced", pub, 15, receipt{received: 2, maxSeq: 15},
			tally{delivered: 2, coalesced: 3, gotFinal: true}},
		{"only the final", pub, 15, receipt{received: 1, maxSeq: 15},
			tally{delivered: 1, coalesced: 4, gotFinal: true}},
		{"the tail after the last receipt is lost", pub, 15, receipt{received: 3, maxSeq: 13},
			tally{delivered: 3, lost: 2}},
		{"a gap then a lost tail", pub, 15, receipt{received: 1, maxSeq: 12},
			tally{delivered: 1, coalesced: 1, lost: 3}},
		{"nothing received", pub, 15, receipt{},
			tally{lost: 5}},
		{"an update no report made", []uint64{11, 12}, 12, receipt{received: 3, maxSeq: 13},
			tally{delivered: 2, unexpected: 1, gotFinal: true}},
		{"the final report failed", []uint64{11, 12}, 0, receipt{received: 2, maxSeq: 12},
			tally{delivered: 2}},
		{"interleaved seqs (another job's writer)", []uint64{11, 13, 15}, 15, receipt{received: 2, maxSeq: 15},
			tally{delivered: 2, coalesced: 1, gotFinal: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := account(tc.published, tc.final, tc.r)
			if got != tc.want {
				t.Errorf("account = %+v, want %+v", got, tc.want)
			}
			if got.delivered+got.coalesced+got.lost != uint64(len(tc.published)) {
				t.Errorf("delivered+coalesced+lost = %d, want %d", got.delivered+got.coalesced+got.lost, len(tc.published))
			}
		})
	}
}

// TestClientAccounting feeds a client the updates a server could send and
// checks what it counts and how the run accounts for them.
func TestClientAccounting(t *testing.T) {
	t.Parallel()
	r := &run{latency: newLatencyShards()}
	r.logCap = 100
	j := newJob("01J", 10)
	c := &client{job: j}
	c.reset(nil)
	now := time.Now().UnixNano()
	for _, seq := range []uint64{10, 11, 13, 12, 13, 15} { // 10 is the initial state; 12 and the second 13 are stale
		r.onUpdate(c, frame{kind: frameUpdate, seq: seq, sentAt: now - int64(time.Millisecond)}, now)
	}
	if c.initial != 1 || c.received != 3 || c.stale != 2 || c.maxSeq.Load() != 15 {
		t.Fatalf("initial %d received %d stale %d maxSeq %d; want 1, 3, 2, 15", c.initial, c.received, c.stale, c.maxSeq.Load())
	}
	for seq := uint64(11); seq <= 15; seq++ {
		j.addPublished(seq, now-int64(20-seq)*int64(time.Millisecond))
	}
	j.final.Store(15)
	got := account(j.seqs(), j.final.Load(), receipt{received: c.received, maxSeq: c.maxSeq.Load()})
	if want := (tally{delivered: 3, coalesced: 2, gotFinal: true}); got != want {
		t.Errorf("account = %+v, want %+v", got, want)
	}
	if n := r.latency.merged().Count(); n != 3 {
		t.Errorf("latency samples = %d, want 3 (one per delivery)", n)
	}
	// Every published seq counts for the "update or newer" latency, the
	// coalesced 12 and 14 by the deliveries of 13 and 15.
	c.connected = true
	r.clients, r.jobs = []*client{c}, []*job{j}
	var res Result
	r.tallyClients(&res)
	if f := res.LatencyUpdateOrNewer; f.Samples != 5 || f.Max != 9*time.Millisecond {
		t.Errorf("update-or-newer samples %d, max %v; want 5, 9ms (seq 11, sent 9 ms before it arrived)", f.Samples, f.Max)
	}
}

func TestRecordFreshness(t *testing.T) {
	t.Parallel()
	ms := int64(time.Millisecond)
	published := []uint64{1, 2, 3, 4, 5}
	sent := map[uint64]int64{1: 0, 2: 10 * ms, 3: 20 * ms, 4: 30 * ms, 5: 40 * ms}
	// 1 arrives at 5 ms; 2 is coalesced into 3, which arrives at 50 ms;
	// 4 and 5 never arrive (lost): they are not counted.
	log := []delivery{{seq: 1, at: 5 * ms}, {seq: 3, at: 50 * ms}}
	h := NewHistogram()
	recordFreshness(published, sent, log, h)
	if h.Count() != 3 {
		t.Fatalf("samples = %d, want 3 (1, 2 and 3)", h.Count())
	}
	if h.Max() != 40*time.Millisecond { // seq 2: sent at 10 ms, held from 50 ms
		t.Errorf("max = %v, want 40ms", h.Max())
	}
}

func TestCheckLoopback(t *testing.T) {
	t.Parallel()
	ok := []string{
		"http://127.0.0.1:8000", "http://127.0.0.1:8000/", "http://127.5.6.7:1", "https://127.0.0.1:8443",
		"http://[::1]:8000", "http://localhost:8000", "http://LOCALHOST:1", "http://localhost",
		"http://[::ffff:127.0.0.1]:80",
	}
	refused := []string{
		"", "127.0.0.1:8000", "ws://127.0.0.1:8000", "http://10.0.0.1:8000", "http://0.0.0.0:8000",
		"http://128.0.0.1:80", "http://[::2]:80", "http://[::]:80", "http://example.com",
		"http://localhost.example.com", "http://127.0.0.1.nip.io", "http://user@127.0.0.1:1",
		"http://127.0.0.1:8000/api", "http://127.0.0.1:8000?x=1", "http://192.168.1.1",
	}
	for _, s := range ok {
		if err := CheckLoopback(s); err != nil {
			t.Errorf("CheckLoopback(%q) = %v, want nil", s, err)
		}
	}
	for _, s := range refused {
		if err := CheckLoopback(s); err == nil {
			t.Errorf("CheckLoopback(%q) = nil, want a refusal", s)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	valid := Defaults()
	valid.Server = "http://127.0.0.1:8000"
	if err := valid.Validate(); err != nil {
		t.Fatalf("Defaults with a server: %v", err)
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"too many clients", func(c *Config) { c.Clients = MaxClients + 1 }, "open-files limit"},
		{"no clients", func(c *Config) { c.Clients = 0 }, "--clients"},
		{"unknown scenario", func(c *Config) { c.Scenario = "storm" }, "--scenario"},
		{"remote server", func(c *Config) { c.Server = "http://10.1.2.3:8000" }, "loopback"},
		{"no rate", func(c *Config) { c.Rate = 0 }, "--rate"},
		{"NaN rate", func(c *Config) { c.Rate = math.NaN() }, "--rate"},
		{"too long", func(c *Config) { c.Duration = time.Hour }, "--duration"},
		{"too many reports in all", func(c *Config) { c.Rate = MaxRate; c.Duration = MaxDuration }, "reports"},
		{"perjob without reports", func(c *Config) { c.Scenario = PerJob; c.Reports = 0 }, "--reports"},
		{"no publishers", func(c *Config) { c.Publishers = 0 }, "--publishers"},
		{"project with a space", func(c *Config) { c.Project = "a b" }, "project"},
		{"logs without a line rate", func(c *Config) { c.Scenario = Logs; c.LineRate = 0 }, "--line-rate"},
		{"logs via ws", func(c *Config) { c.Scenario = Logs; c.Via = ViaWebSocket }, "--via"},
		{"keepcurrent via batch", func(c *Config) { c.Scenario = KeepCurrent; c.Via = ViaBatch }, "--via"},
		{"fanout via nothing", func(c *Config) { c.Scenario = Fanout; c.Via = "" }, "--via"},
		{"logs with no tick", func(c *Config) { c.Scenario = Logs; c.LogTick = 0 }, "--log-tick"},
		{"too many lines in all", func(c *Config) { c.Scenario = Logs; c.LineRate = MaxLineRate; c.Duration = MaxDuration }, "lines"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want an error about %q", err, tc.want)
			}
		})
	}
	// perjob does not care about the rate, fanout not about reports
	c := valid
	c.Scenario, c.Rate = PerJob, 0
	if err := c.Validate(); err != nil {
		t.Errorf("perjob with rate 0: %v", err)
	}
}

// updateFrame wraps a snapshot as the gateway does.
func updateFrame(t testing.TB, s progress.Snapshot) []byte {
	t.Helper()
	b := []byte(`{"type":"update","channel":"job:` + s.JobID + `","job":`)
	b, err := s.AppendJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '}')
}

func sampleSnapshot(msg string, seq uint64) progress.Snapshot {
	total := 10.0
	return progress.Snapshot{
		JobID: "01JD", Project: "p1", Owner: "local", State: progress.Running, Progress: 0.5,
		Params:  map[string]string{"x": `"seq":99`, `"message":"t=1`: "y"},
		Stage:   "encode",
		Stages:  []progress.Stage{{Name: `"seq":7`, Weight: 1, State: progress.Running, Progress: 0.5}},
		Total:   &total,
		Message: msg, Seq: seq,
		CreatedAt: progress.Time{Time: time.Unix(1, 0)}, UpdatedAt: progress.Time{Time: time.Unix(2, 0)},
	}
}

func TestParseFrame(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		frame []byte
		want  frame
	}{
		{"update with a stamp", updateFrame(t, sampleSnapshot("t=1732650000123456789", 18)),
			frame{kind: frameUpdate, seq: 18, sentAt: 1732650000123456789, id: -1}},
		{"update without a stamp", updateFrame(t, sampleSnapshot("frame 420/1200", 3)),
			frame{kind: frameUpdate, seq: 3, id: -1}},
		{"update with keys in another order", []byte(`{"type":"update","job":{"seq":5,"message":"t=42"},"channel":"job:x"}`),
			frame{kind: frameUpdate, seq: 5, sentAt: 42, id: -1}},
		{"update spaced out (slow path)", []byte(`{ "type" : "update", "job" : { "message" : "t=42", "seq" : 5 } }`),
			frame{kind: frameUpdate, seq: 5, sentAt: 42, id: -1}},
		{"reply", []byte(`{"type":"reply","id":1}`), frame{kind: frameReply, id: 1}},
		{"error reply", []byte(`{"type":"reply","id":1,"error":{"code":"forbidden","message":"not yours"}}`),
			frame{kind: frameReply, id: 1, errCode: "forbidden", errMsg: "not yours"}},
		{"reply with a null id", []byte(`{"type":"reply","id":null,"error":{"code":"bad_request","message":"x"}}`),
			frame{kind: frameReply, id: -1, errCode: "bad_request", errMsg: "x"}},
		{"unknown type", []byte(`{"type":"hello"}`), frame{kind: frameOther, id: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseFrame(tc.frame)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("parseFrame = %+v, want %+v", got, tc.want)
			}
		})
	}
	for _, bad := range []string{`not json`, `{"type":"update","job":{}}`, `{"type":"update","job":{"seq":-1}}`} {
		if f, err := parseFrame([]byte(bad)); err == nil {
			t.Errorf("parseFrame(%s) = %+v, want an error", bad, f)
		}
	}
}

// FuzzParseFrame checks that the fast path reads seq and the stamp of any
// snapshot the server's encoder can produce, whatever its strings hold.
func FuzzParseFrame(f *testing.F) {
	f.Add("t=123", "encode", "k", "v", uint64(5), int64(123))
	f.Add(`"seq":1,"message":"t=9`, `\"`, `"seq":`, "t=1", uint64(1<<63), int64(0))
	f.Fuzz(func(t *testing.T, msg, stage, key, val string, seq uint64, stamp int64) {
		s := sampleSnapshot(msg, seq)
		s.Stage, s.Stages[0].Name, s.Params = stage, stage, map[string]string{key: val}
		wantStamp := int64(0)
		if stamp > 0 {
			s.Message = string(appendStamp(nil, stamp)) + msg
			wantStamp = stamp
			if msg != "" && msg[0] >= '0' && msg[0] <= '9' {
				return // the digits run on: not a stamp this test can predict
			}
		} else if strings.HasPrefix(msg, "t=") {
			return
		}
		got, err := parseFrame(updateFrame(t, s))
		if err != nil {
			t.Fatal(err)
		}
		if got.kind != frameUpdate || got.seq != seq || got.sentAt != wantStamp {
			t.Errorf("parseFrame = %+v, want seq %d stamp %d", got, seq, wantStamp)
		}
	})
}

func TestReportBody(t *testing.T) {
	t.Parallel()
	var r progress.Report
	if err := json.Unmarshal(reportBody(nil, 0.25, false, 42), &r); err != nil {
		t.Fatal(err)
	}
	if r.Progress == nil || *r.Progress != 0.25 || r.Message == nil || *r.Message != "t=42" || r.State != nil {
		t.Errorf("progress report = %+v", r)
	}
	r = progress.Report{}
	if err := json.Unmarshal(reportBody(nil, 1, true, 43), &r); err != nil {
		t.Fatal(err)
	}
	if r.State == nil || *r.State != progress.Succeeded || *r.Message != "t=43" || r.Progress != nil {
		t.Errorf("final report = %+v", r)
	}
}

func TestParseProc(t *testing.T) {
	t.Parallel()
	// comm may hold spaces and parentheses
	stat := []byte("4242 (my (odd) server) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 123 456 789\n")
	cpu, err := parseStat(stat)
	if err != nil || cpu != 3250*time.Millisecond {
		t.Errorf("parseStat = %v, %v; want 3.25s", cpu, err)
	}
	if _, err := parseStat([]byte("4242 (x) S 1 2")); err == nil {
		t.Error("parseStat of a short line: want an error")
	}
	status := []byte("Name:\tprogressd\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nThreads:\t9\n")
	rss, err := parseStatusRSS(status)
	if err != nil || rss != 12345*1024 {
		t.Errorf("parseStatusRSS = %d, %v", rss, err)
	}
	if _, err := parseStatusRSS([]byte("Name:\tz\nState:\tZ (zombie)\n")); err == nil {
		t.Error("no VmRSS: want an error")
	}
}

func TestReadProcSelf(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here")
	}
	s, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSS < 1<<20 {
		t.Errorf("RSS = %d bytes: a Go test binary has more", s.RSS)
	}
	if _, err := ReadProc(1 << 30); err == nil {
		t.Error("ReadProc of no process: want an error")
	}
}

func TestHandshakeError(t *testing.T) {
	t.Parallel()
	resp := func(code int) *http.Response {
		return &http.Response{StatusCode: code, Status: fmt.Sprintf("%d %s", code, http.StatusText(code)),
			Body: io.NopCloser(strings.NewReader("body"))}
	}
	for _, tc := range []struct {
		resp      *http.Response
		permanent bool
		mention   string
	}{
		{resp(404), true, "gateway"},
		{resp(401), true, "--token"},
		{resp(403), true, "403"},
		{resp(429), false, "429"},
		{resp(503), false, "503"},
		{nil, false, "refused"},
	} {
		err := handshakeError(tc.resp, errors.New("connection refused"))
		if isPermanent(err) != tc.permanent || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("handshakeError(%v) = %v (permanent %v), want permanent %v mentioning %q",
				tc.resp, err, isPermanent(err), tc.permanent, tc.mention)
		}
	}
}

func TestErrorLogIsBounded(t *testing.T) {
	t.Parallel()
	var l errorLog
	for i := range 1000 {
		l.add("connect", fmt.Errorf("error %d", i%50))
	}
	l.add("connect", errors.New("error 0"))
	got := l.list()
	if len(got) != maxDistinctErrors+1 {
		t.Fatalf("%d lines, want %d: %q", len(got), maxDistinctErrors+1, got)
	}
	if got[0] != "21× connect: error 0" || !strings.Contains(got[maxDistinctErrors], "800× (more errors") {
		t.Errorf("lines = %q", got)
	}
}
