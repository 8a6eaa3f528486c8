package progress

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"
)

// strict decodes b into v as the API and the gateway do when the hand
// decoders pass: one value, unknown fields refused, nothing after it.
func strict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("more than one JSON value")
	}
	return nil
}

var decodeSeeds = []string{
	`{"progress":0.5}`,
	`{"job_id":"j1","progress":0.25,"stage":"build","message":"compiling 3/7","current":3,"total":7}`,
	` { "state" : "succeeded" , "result" : {"url":"x","n":[1,2.5e3,null,true,false]} } `,
	`{"state":"failed","error":"exit 1"}`,
	`{"metadata":{"a":null,"b":"c"},"log":["line one","line \"two\"","é","\u00e9\ud83d\ude00"]}`,
	`{"progress":null,"stage":null,"message":null,"log":null,"metadata":null,"job_id":null}`,
	`{"log":[]}`,
	`{}`,
	`{"Progress":1}`,
	`{"progress":1,"progress":2}`,
	`{"progress":"1"}`,
	`{"progress":1e999}`,
	`{"progress":-0.0,"current":1E+2,"total":0.1e-2}`,
	`{"progress":01}`,
	`{"message":"\xff\xfe"}`,
	`{"unknown":1}`,
	`{"progress":1}{}`,
	`{"progress":1} x`,
	`{"log":["a",null]}`,
	`{"metadata":[[[[[[1]]]]]]}`,
	`{"message":"tab	inside"}`,
	`{"job_id":"a","job_id":"b"}`,
	`[1]`,
	``,
}

// FuzzDecodeReport checks the hand decoders against encoding/json: what
// one of them reads, encoding/json's strict decoding must accept and
// read the same. (What they leave, encoding/json decides alone.)
//
//	go test -run '^$' -fuzz FuzzDecodeReport -fuzztime 60s ./internal/progress
func FuzzDecodeReport(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, ok := DecodeReport(b); ok {
			var want Report
			if err := strict(b, &want); err != nil {
				t.Fatalf("DecodeReport read %q, encoding/json refuses it: %v", b, err)
			}
			if !reflect.DeepEqual(r, want) {
				t.Fatalf("DecodeReport(%q) = %+v, encoding/json %+v", b, r, want)
			}
		}
		batch := append(append([]byte(`{"reports":[`), b...), "]}"...)
		if rs, ok := DecodeBatch(batch); ok {
			var want struct {
				Reports *[]JobReport `json:"reports"`
			}
			if err := strict(batch, &want); err != nil {
				t.Fatalf("DecodeBatch read %q, encoding/json refuses it: %v", batch, err)
			}
			if want.Reports == nil || !reflect.DeepEqual(rs, *want.Reports) {
				t.Fatalf("DecodeBatch(%q) = %+v, encoding/json %+v", batch, rs, want.Reports)
			}
		}
		if len(b) > 0 && b[0] == '{' {
			frame := append([]byte(`{"op":"report","id":7,`), b[1:]...)
			if id, r, ok := DecodeReportFrame(frame); ok {
				var want struct {
					Op string          `json:"op"`
					ID json.RawMessage `json:"id"`
					JobReport
				}
				if err := strict(frame, &want); err != nil {
					t.Fatalf("DecodeReportFrame read %q, encoding/json refuses it: %v", frame, err)
				}
				if want.Op != "report" || !bytes.Equal(id, want.ID) || !reflect.DeepEqual(r, want.JobReport) {
					t.Fatalf("DecodeReportFrame(%q) = %s %+v, encoding/json %+v", frame, id, r, want)
				}
			}
		}
	})
}

// TestDecodeReportReadsPlainBodies: the bodies reporters send are read
// by hand, not left to encoding/json.
func TestDecodeReportReadsPlainBodies(t *testing.T) {
	for _, s := range decodeSeeds[:7] {
		if bytes.Contains([]byte(s), []byte("job_id")) {
			s = `{"reports":[` + s + `]}`
			if _, ok := DecodeBatch([]byte(s)); !ok {
				t.Errorf("DecodeBatch left %s to encoding/json", s)
			}
		} else if _, ok := DecodeReport([]byte(s)); !ok {
			t.Errorf("DecodeReport left %s to encoding/json", s)
		}
	}
	batch := `{"reports":[{"job_id":"a","progress":0.1},{"job_id":"b","state":"succeeded"}]}`
	rs, ok := DecodeBatch([]byte(batch))
	if !ok || len(rs) != 2 || rs[1].JobID != "b" || *rs[1].State != Succeeded {
		t.Errorf("DecodeBatch(%s) = %+v, %v", batch, rs, ok)
	}
	id, r, ok := DecodeReportFrame([]byte(`{"op":"report","id":12,"job_id":"a","progress":0.5}`))
	if !ok || string(id) != "12" || r.JobID != "a" || *r.Progress != 0.5 {
		t.Errorf("DecodeReportFrame = %s %+v %v", id, r, ok)
	}
	for _, s := range []string{`{"op":"ping","id":1}`, `{"op":"report","job_id":"a"}`, `{"op":"report","id":"x","job_id":"a"}`} {
		if _, _, ok := DecodeReportFrame([]byte(s)); ok {
			t.Errorf("DecodeReportFrame read %s", s)
		}
	}
}

// BenchmarkDecodeBatch: a batch of 1,000 reports, by hand and by
// encoding/json.
//
//	go test -run '^$' -bench DecodeBatch ./internal/progress
func BenchmarkDecodeBatch(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString(`{"reports":[`)
	for i := range 1000 {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"job_id":"0193a7c2-5b1e-7c3d-9f2a-4e5d6c7b8a90","progress":0.4213,"message":"step 42 of 100","stage":"train"}`)
	}
	buf.WriteString(`]}`)
	body := buf.Bytes()
	b.Run("hand", func(b *testing.B) {
		for b.Loop() {
			if _, ok := DecodeBatch(body); !ok {
				b.Fatal("not read")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			var v struct {
				Reports *[]JobReport `json:"reports"`
			}
			if err := strict(body, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
