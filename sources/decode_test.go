package sources

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestDecodeGolden decodes every line of testdata/decode.jsonl and compares
// the result (the event, or the error) with testdata/decode.golden.
func TestDecodeGolden(t *testing.T) {
	in, err := os.ReadFile("testdata/decode.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var d Decoder
	var out bytes.Buffer
	for i, line := range bytes.Split(bytes.TrimRight(in, "\n"), []byte("\n")) {
		ev, err := d.Decode(line)
		if err != nil {
			fmt.Fprintf(&out, "%d: error: %v\n", i+1, err)
			continue
		}
		fmt.Fprintf(&out, "%d: %s\n", i+1, AppendJSON(nil, &ev))
	}
	const golden = "testdata/decode.golden"
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update once to create it)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("decode output differs from %s:\n%s", golden, out.String())
	}
}

func TestDecodeFieldErrors(t *testing.T) {
	cases := []struct {
		in, field string
	}{
		{`{"qty":{}}`, "qty"},
		{`{"sku":["a"]}`, "sku"},
		{`{"event_time":"yesterday"}`, "event_time"},
		{`{"on_hand":"NaN"}`, "on_hand"},
		{`{"unit_cost":"Inf"}`, "unit_cost"},
	}
	var d Decoder
	for _, c := range cases {
		_, err := d.Decode([]byte(c.in))
		fe, ok := err.(*FieldError)
		if !ok || fe.Field != c.field {
			t.Errorf("Decode(%s) = %v, want a FieldError on %s", c.in, err, c.field)
		}
	}
	if _, err := d.Decode([]byte{0xff, '{', '}'}); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("invalid UTF-8: got %v", err)
	}
}

func TestAppendJSONRoundTrip(t *testing.T) {
	ev := Event{EventID: "a\"b", Source: "pos", Type: TypeTransferOut, SKU: "S\\1", Location: "L\t1",
		Qty: 2.5, HasQty: true, TransferID: "T", ToLocation: "L2", UnitCost: 0.1, HasUnitCost: true,
		Category: "c", EventTime: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}
	var d Decoder
	got, err := d.Decode(AppendJSON(nil, &ev))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, ev) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, ev)
	}
}

// FuzzDecode: Decode never panics, and what it accepts re-encodes to an
// event it decodes identically.
func FuzzDecode(f *testing.F) {
	in, _ := os.ReadFile("testdata/decode.jsonl")
	for _, line := range bytes.Split(in, []byte("\n")) {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Decoder
		ev, err := d.Decode(b)
		if err != nil {
			return
		}
		again, err := d.Decode(AppendJSON(nil, &ev))
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, ev) {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", ev, again)
		}
	})
}
