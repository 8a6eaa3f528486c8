package progress

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// TestAppendJSONEncodesEveryField fills every field of Snapshot (and of
// the structs inside it) with a value that is not zero, found by
// reflection, and compares AppendJSON with encoding/json: a field added to
// Snapshot but not to the hand-written encoder — an omitempty field above
// all, which the hand-picked cases leave empty — fails here.
func TestAppendJSONEncodesEveryField(t *testing.T) {
	var s Snapshot
	fill(t, reflect.ValueOf(&s).Elem(), "Snapshot")
	s.State = Running // a valid state; fill gave it an arbitrary string
	for i := range s.Stages {
		s.Stages[i].State = Running
	}
	got, err := s.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := reference(t, s); !bytes.Equal(got, want) {
		t.Fatalf("a snapshot with every field set:\n got %s\nwant %s\n(a field of Snapshot that AppendJSON does not write?)", got, want)
	}
}

// fill sets v, and everything v holds, to values that are not zero.
func fill(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	if v.Type() == reflect.TypeFor[json.RawMessage]() {
		v.SetBytes([]byte(`{"` + path + `":[1,"\u003c\u0026\u003e"]}`)) // as encoding/json writes it
		return
	}
	if v.Type() == reflect.TypeFor[Time]() {
		v.Set(reflect.ValueOf(Time{time.Date(2026, 11, 26, 12, 0, 0, 123e6, time.UTC)}))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(path + " <&> \"é\"")
	case reflect.Float64, reflect.Float32:
		v.SetFloat(0.25 + float64(len(path)))
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(int64(len(path)))
	case reflect.Uint64, reflect.Uint32, reflect.Uint:
		v.SetUint(uint64(len(path)))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), path)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(t, v.Index(i), path+"["+strconv.Itoa(i)+"]")
		}
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for i := range 2 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(t, k, path+".key"+strconv.Itoa(i))
			fill(t, e, path+".value")
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Struct:
		for i := range v.NumField() {
			if !v.Type().Field(i).IsExported() {
				continue
			}
			fill(t, v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	default:
		t.Fatalf("%s: fill does not know kind %s; teach it, so this test covers the new field", path, v.Kind())
	}
	if v.IsZero() {
		t.Fatalf("%s is still zero after fill", path)
	}
}
