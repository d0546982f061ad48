package sources

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"reflect"
	"testing"
	"time"
)

// testEvents are the events of testdata/decode.jsonl that decode.
func testEvents(t testing.TB) []Event {
	in, err := os.ReadFile("testdata/decode.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var d Decoder
	var out []Event
	for _, line := range bytes.Split(bytes.TrimRight(in, "\n"), []byte("\n")) {
		if ev, err := d.Decode(line); err == nil {
			out = append(out, ev)
		}
	}
	return out
}

func TestBinaryRoundTrip(t *testing.T) {
	evs := append(testEvents(t),
		Event{EventID: "a\"b", Source: "pos", Type: TypeTransferOut, SKU: "S\\1", Location: "L\t1",
			Qty: 2.5, HasQty: true, TransferID: "T", ToLocation: "L2", UnitCost: 0.1, HasUnitCost: true,
			Category: "c", EventTime: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)},
		Event{Type: TypeCount, OnHand: -0.0, HasOnHand: true, EventTime: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)},
		Event{EventTime: time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC)},
		Event{})
	var d Decoder
	for _, ev := range evs {
		b := AppendBinary(nil, &ev)
		got, err := d.DecodeBinary(b)
		if err != nil {
			t.Fatalf("%+v: %v", ev, err)
		}
		if !reflect.DeepEqual(got, ev) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, ev)
		}
		if j := AppendJSON(nil, &ev); len(b) >= len(j) && ev.EventID != "" {
			t.Errorf("binary (%d bytes) is not smaller than JSON (%d bytes): %s", len(b), len(j), j)
		}
	}
}

// TestBinaryFormat pins version 1 of the encoding: records written by an
// older intake must still decode.
func TestBinaryFormat(t *testing.T) {
	ev := Event{EventID: "e1", Source: "pos", Type: TypeSale, SKU: "S", Location: "L", Qty: 2, HasQty: true,
		Category: "c", EventTime: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}
	const want = "010902653103706f73047361" + "6c650153014c00000001630000000000000040" + "cad6b9950d06"
	if got := hex.EncodeToString(AppendBinary(nil, &ev)); got != want {
		t.Errorf("encoding of %+v:\n got %s\nwant %s", ev, got, want)
	}
	b, _ := hex.DecodeString(want)
	var d Decoder
	if got, err := d.DecodeBinary(b); err != nil || !reflect.DeepEqual(got, ev) {
		t.Errorf("decode of version 1 = %+v, %v", got, err)
	}
}

func TestBinaryErrors(t *testing.T) {
	ev := Event{EventID: "e1", Source: "pos", Type: TypeSale, SKU: "S", Location: "L", Qty: 2, HasQty: true,
		EventTime: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}
	good := AppendBinary(nil, &ev)
	var d Decoder
	for n := range len(good) {
		if _, err := d.DecodeBinary(good[:n]); !errors.Is(err, ErrBinary) {
			t.Errorf("first %d of %d bytes: got %v, want ErrBinary", n, len(good), err)
		}
	}
	bad := map[string][]byte{
		"trailing bytes": append(bytes.Clone(good), 0),
		"unknown flag":   append([]byte{BinaryFormat, 0x80}, good[2:]...),
		"JSON":           []byte(`{"event_id":"e1"}`),
		"not UTF-8":      AppendBinary(nil, &Event{EventID: "\xff"}),
		"NaN":            append(append([]byte{BinaryFormat, binQty}, make([]byte, 9)...), 0, 0, 0, 0, 0, 0, 0xf8, 0x7f),
		"nanoseconds":    append(append([]byte{BinaryFormat, binTime}, make([]byte, 9)...), 0, 0x80, 0x94, 0xeb, 0xdc, 0x03),
	}
	for name, b := range bad {
		if _, err := d.DecodeBinary(b); !errors.Is(err, ErrBinary) {
			t.Errorf("%s: got %v, want ErrBinary", name, err)
		}
	}
}

// FuzzDecodeBinary: DecodeBinary never panics, and what it accepts
// re-encodes to an event it decodes identically.
func FuzzDecodeBinary(f *testing.F) {
	for _, ev := range testEvents(f) {
		f.Add(AppendBinary(nil, &ev))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Decoder
		ev, err := d.DecodeBinary(b)
		if err != nil {
			return
		}
		again, err := d.DecodeBinary(AppendBinary(nil, &ev))
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, ev) {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", ev, again)
		}
	})
}
