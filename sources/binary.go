package sources

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// BinaryFormat is the first byte of an event in the compact binary encoding
// (AppendBinary). No JSON text starts with it, so a reader tells the two
// encodings apart by that byte alone.
const BinaryFormat byte = 0x01

// ErrBinary marks a binary-encoded event that cannot be decoded.
var ErrBinary = errors.New("sources: bad binary event")

const (
	binQty = 1 << iota
	binOnHand
	binUnitCost
	binTime
)

// AppendBinary appends ev in the compact binary encoding to dst: the engine's
// own records between its stages, a fraction of the JSON's decoding cost.
// DecodeBinary(AppendBinary(nil, ev)) returns ev again.
//
// Layout (version 1): BinaryFormat; a flags byte (qty, on_hand, unit_cost,
// event_time present); event_id, source, type, sku, location, transfer_id,
// to_location, from_location, category as uvarint length + bytes; qty,
// on_hand, unit_cost as 8-byte little-endian IEEE 754 each when present;
// event_time as varint unix seconds + uvarint nanoseconds when present.
func AppendBinary(dst []byte, ev *Event) []byte {
	var flags byte
	if ev.HasQty {
		flags |= binQty
	}
	if ev.HasOnHand {
		flags |= binOnHand
	}
	if ev.HasUnitCost {
		flags |= binUnitCost
	}
	if !ev.EventTime.IsZero() {
		flags |= binTime
	}
	dst = append(dst, BinaryFormat, flags)
	for _, s := range [...]string{ev.EventID, ev.Source, ev.Type, ev.SKU, ev.Location, ev.TransferID, ev.ToLocation, ev.FromLocation, ev.Category} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	if ev.HasQty {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(ev.Qty))
	}
	if ev.HasOnHand {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(ev.OnHand))
	}
	if ev.HasUnitCost {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(ev.UnitCost))
	}
	if flags&binTime != 0 {
		dst = binary.AppendVarint(dst, ev.EventTime.Unix())
		dst = binary.AppendUvarint(dst, uint64(ev.EventTime.Nanosecond()))
	}
	return dst
}

// DecodeBinary decodes one event that AppendBinary wrote. The strings of
// the event share one allocation; source, category and the other end of a
// transfer are interned, as Decode interns them.
func (d *Decoder) DecodeBinary(b []byte) (Event, error) {
	var ev Event
	if len(b) < 2 || b[0] != BinaryFormat {
		return ev, fmt.Errorf("%w: not in binary format %d", ErrBinary, BinaryFormat)
	}
	flags := b[1]
	if flags&^(binQty|binOnHand|binUnitCost|binTime) != 0 {
		return ev, fmt.Errorf("%w: unknown flags %#x", ErrBinary, flags)
	}
	all := string(b) // one allocation for every string of the event
	r := binReader{s: all, i: 2}
	ev.EventID = r.str()
	ev.Source = d.kept(r.str())
	ev.Type = eventType(r.str())
	ev.SKU = r.str()
	ev.Location = r.str()
	ev.TransferID = r.str()
	ev.ToLocation = d.kept(r.str())
	ev.FromLocation = d.kept(r.str())
	ev.Category = d.kept(r.str())
	if flags&binQty != 0 {
		ev.Qty, ev.HasQty = r.float(), true
	}
	if flags&binOnHand != 0 {
		ev.OnHand, ev.HasOnHand = r.float(), true
	}
	if flags&binUnitCost != 0 {
		ev.UnitCost, ev.HasUnitCost = r.float(), true
	}
	if flags&binTime != 0 {
		sec := r.varint()
		ns := r.uvarint()
		if ns >= 1e9 {
			r.fail("nanoseconds out of range")
		}
		ev.EventTime = time.Unix(sec, int64(ns)).UTC()
	}
	if r.err == "" && r.i != len(all) {
		r.fail(fmt.Sprintf("%d bytes after the event", len(all)-r.i))
	}
	if r.err != "" {
		return Event{}, fmt.Errorf("%w: %s", ErrBinary, r.err)
	}
	for _, f := range [...]float64{ev.Qty, ev.OnHand, ev.UnitCost} {
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return Event{}, fmt.Errorf("%w: a number is not finite", ErrBinary)
		}
	}
	return ev, nil
}

// kept interns s, a substring of a decoded record, when it is not empty:
// the fields the engine keeps in its state must not keep the whole record
// alive.
func (d *Decoder) kept(s string) string {
	if s == "" {
		return ""
	}
	return interned(d, s)
}

// eventType returns the constant for a known type, so that the type does
// not need a copy or a table lookup; an unknown one stays as it is.
func eventType(s string) string {
	for _, t := range [...]string{TypeSale, TypeReturn, TypeReceipt, TypeAdjustment, TypeCount, TypeSnapshot,
		TypeTransferOut, TypeTransferIn, TypeTransferExpected} {
		if s == t {
			return t
		}
	}
	return s
}

// binReader reads AppendBinary's fields from s; the first problem is kept
// in err and every later read returns zero.
type binReader struct {
	s   string
	i   int
	err string
}

func (r *binReader) fail(why string) {
	if r.err == "" {
		r.err = why
	}
	r.i = len(r.s)
}

func (r *binReader) uvarint() uint64 {
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if r.i >= len(r.s) {
			r.fail("truncated")
			return 0
		}
		c := r.s[r.i]
		r.i++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v
		}
	}
	r.fail("varint overflows")
	return 0
}

func (r *binReader) varint() int64 {
	u := r.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (r *binReader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.s)-r.i) {
		r.fail("truncated")
		return ""
	}
	s := r.s[r.i : r.i+int(n)]
	if !utf8.ValidString(s) {
		r.fail("a string is not valid UTF-8")
		return ""
	}
	r.i += int(n)
	return s
}

func (r *binReader) float() float64 {
	if len(r.s)-r.i < 8 {
		r.fail("truncated")
		return 0
	}
	var v uint64
	for k := 7; k >= 0; k-- {
		v = v<<8 | uint64(r.s[r.i+k])
	}
	r.i += 8
	return math.Float64frombits(v)
}
