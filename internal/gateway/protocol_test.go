package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/progressd/progressd/internal/progress"
)

func TestDecodeFrame(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, op, id, code string
	}{
		{`{"op":"subscribe","id":2,"channel":"job:x"}`, opSubscribe, "2", ""},
		{`{"op":"ping","id":6,"extra":true}`, opPing, "6", ""},
		{`{"op":"auth","id":1.5e3,"token":"t"}`, opAuth, "1.5e3", ""},
		{`{"op":"ping"}`, opPing, "null", ""},
		{`{"op":"dance","id":3}`, "dance", "3", CodeBadRequest},
		{`{"id":4}`, "", "4", CodeBadRequest},
		{`{"op":"ping","id":"7"}`, opPing, "null", CodeBadRequest},
		{`{"op":"ping","id":{"x":1}}`, opPing, "null", CodeBadRequest},
		{`not json`, "", "null", CodeBadRequest},
		{`[1,2]`, "", "null", CodeBadRequest},
		{`{"op":"ping","id":1} trailing`, "", "null", CodeBadRequest},
	}
	for _, tt := range tests {
		f, perr := decodeFrame([]byte(tt.in))
		code := ""
		if perr != nil {
			code = perr.Code
		}
		if code != tt.code || string(f.ID) != tt.id || (code == "" && f.Op != tt.op) {
			t.Errorf("decodeFrame(%s) = op %q id %s err %v; want op %q id %s code %q", tt.in, f.Op, f.ID, perr, tt.op, tt.id, tt.code)
		}
	}
}

func TestEncodeReply(t *testing.T) {
	t.Parallel()
	if got := string(encodeReply(json.RawMessage("3"), nil)); got != `{"type":"reply","id":3}` {
		t.Errorf("success reply %s", got)
	}
	got := string(encodeReply(json.RawMessage("4"), errorf(CodeForbidden, `no "way"`)))
	if got != `{"type":"reply","id":4,"error":{"code":"forbidden","message":"no \"way\""}}` {
		t.Errorf("error reply %s", got)
	}
}

func TestUpdateFrameSlices(t *testing.T) {
	t.Parallel()
	m := newUpdate(`project:we"ird`, &progress.Snapshot{JobID: "a", Seq: 3}, []byte(`{"job_id":"a","seq":3}`))
	var f struct {
		Type, Channel string
		Job           json.RawMessage
	}
	if err := json.Unmarshal(m.frame, &f); err != nil {
		t.Fatalf("frame %s: %v", m.frame, err)
	}
	if f.Type != "update" || f.Channel != `project:we"ird` || string(f.Job) != `{"job_id":"a","seq":3}` {
		t.Errorf("frame decodes to %+v", f)
	}
	if string(m.job()) != `{"job_id":"a","seq":3}` {
		t.Errorf("job() = %s", m.job())
	}
	ev := appendEvent(nil, m, false)
	want := "event: update\ndata: {\"channel\":\"project:we\\\"ird\",\"job\":{\"job_id\":\"a\",\"seq\":3}}\n\n"
	if string(ev) != want {
		t.Errorf("SSE event %q, want %q", ev, want)
	}
	ev = appendEvent(nil, m, true)
	if want := "event: update\nid: 3\ndata: {\"job_id\":\"a\",\"seq\":3}\n\n"; string(ev) != want {
		t.Errorf("SSE job event %q, want %q", ev, want)
	}
}

func TestAppendDataSplitsLines(t *testing.T) {
	t.Parallel()
	got := string(appendData(nil, "", []byte("a\nb\r\nc\rd")))
	if want := "data: a\ndata: b\ndata: c\ndata: d\n\n"; got != want {
		t.Errorf("appendData = %q, want %q", got, want)
	}
}

// FuzzDecodeFrame feeds arbitrary client frames to the decoder: it must
// not panic, and whatever it returns must make a valid JSON reply.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{"op":"subscribe","id":2,"channel":"job:x"}`,
		`{"op":"auth","id":1,"token":"abc","client_id":"tab-1"}`,
		`{"op":"ping","id":-0.5e-3}`,
		`{"op":"unsubscribe","id":99999999999999999999999,"channel":"project:p"}`,
		`{"op":1}`, `{"id":null}`, `null`, `"str"`, `{`, "\xff\xfe", `{"op":"ping","id":1e400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, perr := decodeFrame(data)
		reply := encodeReply(fr.ID, perr)
		if !json.Valid(reply) {
			t.Fatalf("reply to %q is not JSON: %s", data, reply)
		}
		var back struct {
			Type  string          `json:"type"`
			ID    json.RawMessage `json:"id"`
			Error *protoError     `json:"error"`
		}
		if err := json.Unmarshal(reply, &back); err != nil || back.Type != "reply" {
			t.Fatalf("reply %s: %v", reply, err)
		}
		if !bytes.Equal(back.ID, fr.ID) {
			t.Fatalf("reply id %s, frame id %s", back.ID, fr.ID)
		}
		if perr == nil {
			switch fr.Op {
			case opAuth, opSubscribe, opUnsubscribe, opPing:
			default:
				t.Fatalf("accepted unknown op %q", fr.Op)
			}
		}
	})
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ok := Config{Broker: e.broker, Jobs: e.svc, Auth: e.auth}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, tt := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.Broker = nil }, "Config.Broker is required"},
		{func(c *Config) { c.Jobs = nil }, "Config.Jobs is required"},
		{func(c *Config) { c.Auth = nil }, "Config.Auth is required"},
		{func(c *Config) { c.MaxFrameBytes = -1 }, "Config.MaxFrameBytes is -1"},
		{func(c *Config) { c.PingInterval = -time.Second }, "Config.PingInterval is -1s"},
	} {
		c := ok
		tt.change(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate() = %v, want it to say %q", err, tt.want)
		}
		if _, err := New(c); err == nil {
			t.Errorf("New accepted a config Validate refuses (%s)", tt.want)
		}
	}
	// A second gateway cannot register the same series.
	reg := prometheus.NewRegistry()
	ok.Registerer = reg
	g, err := New(ok)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Shutdown(context.Background())
	if _, err := New(ok); err == nil {
		t.Error("two gateways registered the same metrics")
	}
}
