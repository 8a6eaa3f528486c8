package progress

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// The report decoders below read the bodies of reports (one report, a
// batch, a WebSocket report frame) by hand, because encoding/json was 27%
// of the server's CPU for a batch of reports (reflection per field, a
// scan of the whole body before decoding it). Each reads only the plain
// form a reporter sends — field names spelled exactly, each once per
// object, strings without invalid UTF-8 — and reports false for anything
// else, valid or not: the caller then decodes the body with encoding/json
// as before, strict (unknown fields refused), which decides and words the
// error. So what is accepted, what each field holds and every error are
// encoding/json's; FuzzDecodeReport checks the first two against it.

// DecodeReport reads one report object, {"progress": …, …}.
func DecodeReport(b []byte) (Report, bool) {
	d := decoder{b: b}
	var r Report
	ok := d.object(func(key []byte) bool { return d.reportField(key, &r) }) && d.end()
	return r, ok
}

// DecodeBatch reads a batch body, {"reports": [{"job_id": …, …}, …]}.
// It reads any number of reports; the caller bounds them.
func DecodeBatch(b []byte) ([]JobReport, bool) {
	d := decoder{b: b}
	var reports []JobReport
	seen := false
	ok := d.object(func(key []byte) bool {
		if string(key) != "reports" || seen || !d.peek('[') {
			return false // a second list would be merged into the first
		}
		seen = true
		reports = []JobReport{}
		return d.array(func() bool {
			var r JobReport
			if !d.object(func(key []byte) bool { return d.jobReportField(key, &r) }) {
				return false
			}
			reports = append(reports, r)
			return true
		})
	}) && d.end()
	return reports, ok && seen
}

// DecodeReportFrame reads a WebSocket report frame, {"op": "report",
// "id": N, "job_id": …, …}: the number id as written, and the report.
func DecodeReportFrame(b []byte) (id []byte, r JobReport, ok bool) {
	d := decoder{b: b}
	op := ""
	ok = d.object(func(key []byte) bool {
		switch string(key) {
		case "op":
			if op != "" {
				return false
			}
			s, ok := d.string()
			op = s
			return ok && s != ""
		case "id":
			d.space()
			start := d.i
			if id != nil || !d.number() {
				return false
			}
			id = b[start:d.i]
			return true
		}
		return d.jobReportField(key, &r)
	}) && d.end()
	return id, r, ok && op == "report" && id != nil
}

// decoder reads JSON from b at i. Its methods return false for anything
// they do not read, valid JSON or not.
type decoder struct {
	b    []byte
	i    int
	seen uint16 // the report fields read in the current object
	// What the reports' pointers point to, allocated a block at a time
	// rather than one by one (a batch has thousands).
	floats  []float64
	strings []string
}

// alloc puts v in the block *blk and returns where it is, starting a
// new block when this one is full.
func alloc[T any](blk *[]T, v T) *T {
	if len(*blk) == cap(*blk) {
		*blk = make([]T, 0, min(max(2*cap(*blk), 4), 256))
	}
	*blk = append(*blk, v)
	return &(*blk)[len(*blk)-1]
}

// Report fields, as bits of decoder.seen.
const (
	fJobID uint16 = 1 << iota
	fProgress
	fStage
	fCurrent
	fTotal
	fMessage
	fState
	fError
	fMetadata
	fResult
	fLog
)

func (d *decoder) jobReportField(key []byte, r *JobReport) bool {
	if string(key) == "job_id" {
		if !d.once(fJobID) {
			return false
		}
		if d.null() {
			return true // null leaves a string as it is
		}
		s, ok := d.string()
		r.JobID = s
		return ok
	}
	return d.reportField(key, &r.Report)
}

func (d *decoder) reportField(key []byte, r *Report) bool {
	switch string(key) {
	case "progress":
		return d.once(fProgress) && d.float(&r.Progress)
	case "current":
		return d.once(fCurrent) && d.float(&r.Current)
	case "total":
		return d.once(fTotal) && d.float(&r.Total)
	case "stage":
		return d.once(fStage) && d.stringPtr(&r.Stage)
	case "message":
		return d.once(fMessage) && d.stringPtr(&r.Message)
	case "error":
		return d.once(fError) && d.stringPtr(&r.Error)
	case "state":
		var s *string
		if !d.once(fState) || !d.stringPtr(&s) {
			return false
		}
		if s != nil {
			r.State = (*State)(s)
		}
		return true
	case "metadata":
		return d.once(fMetadata) && d.raw(&r.Metadata)
	case "result":
		return d.once(fResult) && d.raw(&r.Result)
	case "log":
		if !d.once(fLog) {
			return false
		}
		if d.null() {
			return true
		}
		if !d.peek('[') {
			return false
		}
		r.Log = []string{}
		return d.array(func() bool {
			s, ok := d.string() // a null line would be ""
			r.Log = append(r.Log, s)
			return ok
		})
	}
	return false
}

// once marks field f read, false if it was already: a repeated field is
// left to encoding/json.
func (d *decoder) once(f uint16) bool {
	if d.seen&f != 0 {
		return false
	}
	d.seen |= f
	return true
}

func (d *decoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek skips space and reports whether c comes next.
func (d *decoder) peek(c byte) bool {
	d.space()
	return d.i < len(d.b) && d.b[d.i] == c
}

// eat skips space and c, if c comes next.
func (d *decoder) eat(c byte) bool {
	if d.peek(c) {
		d.i++
		return true
	}
	return false
}

// end reports whether only space is left.
func (d *decoder) end() bool {
	d.space()
	return d.i == len(d.b)
}

// object reads an object, calling field with each key, d just before its
// value (each field reads its value). Keys with escapes are not read.
func (d *decoder) object(field func(key []byte) bool) bool {
	if !d.eat('{') {
		return false
	}
	seen := d.seen
	d.seen = 0
	defer func() { d.seen = seen }()
	if d.eat('}') {
		return true
	}
	for {
		if !d.eat('"') {
			return false
		}
		start := d.i
		for d.i < len(d.b) && d.b[d.i] != '"' && d.b[d.i] != '\\' && d.b[d.i] >= 0x20 && d.b[d.i] < 0x80 {
			d.i++
		}
		if d.i == len(d.b) || d.b[d.i] != '"' {
			return false
		}
		key := d.b[start:d.i]
		d.i++
		if !d.eat(':') {
			return false
		}
		d.space()
		if !field(key) {
			return false
		}
		if d.eat(',') {
			continue
		}
		return d.eat('}')
	}
}

// array reads an array, calling elem for each element.
func (d *decoder) array(elem func() bool) bool {
	if !d.eat('[') {
		return false
	}
	if d.eat(']') {
		return true
	}
	for {
		d.space()
		if !elem() {
			return false
		}
		if d.eat(',') {
			continue
		}
		return d.eat(']')
	}
}

// null reads null if it comes next.
func (d *decoder) null() bool {
	d.space()
	if len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "null" {
		d.i += 4
		return true
	}
	return false
}

// float reads a number or null into *p.
func (d *decoder) float(p **float64) bool {
	if d.null() {
		*p = nil
		return true
	}
	start := d.i
	if !d.number() {
		return false
	}
	f, err := strconv.ParseFloat(unsafe.String(&d.b[start], d.i-start), 64)
	if err != nil {
		return false // out of range: encoding/json says so
	}
	*p = alloc(&d.floats, f)
	return true
}

// number reads a number as JSON writes them.
func (d *decoder) number() bool {
	d.space()
	b, i := d.b, d.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		if i+1 >= len(b) || b[i+1] < '0' || b[i+1] > '9' {
			return false
		}
		i = digits(b, i+1)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		i = digits(b, i)
	}
	d.i = i
	return true
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// stringPtr reads a string or null into *p.
func (d *decoder) stringPtr(p **string) bool {
	if d.null() {
		*p = nil
		return true
	}
	s, ok := d.string()
	if ok {
		*p = alloc(&d.strings, s)
	}
	return ok
}

// string reads a string. One with escapes or bytes that are not UTF-8
// is decoded by encoding/json, which alone knows what it makes of them.
func (d *decoder) string() (string, bool) {
	d.space()
	start := d.i
	plain, ok := d.skipString()
	if !ok {
		return "", false
	}
	if plain {
		return string(d.b[start+1 : d.i-1]), true
	}
	var s string
	if json.Unmarshal(d.b[start:d.i], &s) != nil {
		return "", false
	}
	return s, true
}

// skipString moves past the string at i; plain says it has no escapes
// and is valid UTF-8.
func (d *decoder) skipString() (plain, ok bool) {
	d.space()
	b, i := d.b, d.i
	if i >= len(b) || b[i] != '"' {
		return false, false
	}
	i++
	plain, ascii := true, true
	for {
		if i >= len(b) {
			return false, false
		}
		c := b[i]
		switch {
		case c == '"':
			if !ascii && plain && !utf8.Valid(b[d.i+1:i]) {
				plain = false
			}
			d.i = i + 1
			return plain, true
		case c < 0x20:
			return false, false
		case c == '\\':
			plain = false
			if i+1 >= len(b) {
				return false, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !hex4(b[i+2:i+6]) {
					return false, false
				}
				i += 6
			default:
				return false, false
			}
			continue
		case c >= 0x80:
			ascii = false
		}
		i++
	}
}

func hex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// maxDepth bounds the nesting raw reads; deeper values go to
// encoding/json, which has a bound of its own.
const maxDepth = 100

// raw reads any value into *p as its bytes (null too, as encoding/json
// keeps it in a json.RawMessage).
func (d *decoder) raw(p *json.RawMessage) bool {
	d.space()
	start := d.i
	if !d.skip(0) {
		return false
	}
	*p = append(json.RawMessage(nil), d.b[start:d.i]...)
	return true
}

// skip moves past one value, checking it is valid JSON.
func (d *decoder) skip(depth int) bool {
	d.space()
	if d.i >= len(d.b) || depth > maxDepth {
		return false
	}
	switch c := d.b[d.i]; {
	case c == '{':
		d.i++
		if d.eat('}') {
			return true
		}
		for {
			if _, ok := d.skipString(); !ok || !d.eat(':') || !d.skip(depth+1) {
				return false
			}
			if d.eat(',') {
				continue
			}
			return d.eat('}')
		}
	case c == '[':
		d.i++
		if d.eat(']') {
			return true
		}
		for {
			if !d.skip(depth + 1) {
				return false
			}
			if d.eat(',') {
				continue
			}
			return d.eat(']')
		}
	case c == '"':
		_, ok := d.skipString()
		return ok
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(d.b)-d.i >= len(lit) && string(d.b[d.i:d.i+len(lit)]) == lit {
			d.i += len(lit)
			return true
		}
	}
	return false
}
