package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// Entry is the ledger row of one SKU-location. Times are unix nanoseconds of
// event time (the source's clock), 0 meaning never.
//
// An Entry belongs to the partition's single writer; it is not safe for
// concurrent use.
type Entry struct {
	Category string
	OnHand   float64
	UnitCost float64

	FirstSeen int64
	LastEvent int64
	LastSale  int64
	LastEval  int64 // the latest time the rules were evaluated at for this key

	// Baselined is false until a count or a snapshot gave the ledger an
	// absolute level; before that OnHand is only the sum of movements.
	Baselined bool

	HasCount     bool
	LastCount    int64   // event time of the last physical count
	LastCountQty float64 // what that count found
	PrevCount    int64   // event time of the count before it
	// CountVariance is what the last count corrected (counted − ledger
	// before it) and CountLedgerBefore that ledger; both move when a late
	// event shows the ledger before the count was different.
	CountVariance     float64
	CountLedgerBefore float64

	// Sources records the newest event time seen from each source, for sync
	// validation (a feed that goes quiet is visible per key).
	Sources []SourceSeen

	// Snapshot is the last level a source system reported, and how far it was
	// from the ledger then. A snapshot never moves the ledger.
	SnapshotSource string
	SnapshotOnHand float64
	SnapshotDiff   float64
	SnapshotAt     int64

	Demand Demand

	InTransit []Transfer // expected here, not yet received
	Received  []Transfer // recently received, newest last (bounded)
	Unmatched []Transfer // received with no known shipment yet (bounded)

	Open []Exception // at most one per rule

	// Recent are the latest movements (bounded, oldest first), so a count or
	// snapshot that arrives after movements that happened after it can be
	// placed where it belongs in time: sources are read from different
	// topics and do not arrive in event-time order.
	Recent []Movement

	// NegativeSince is when (event time) the ledger last went below zero, 0
	// while it is not.
	NegativeSince int64

	// Wakes holds each timer rule's next evaluation; WakeAt is the earliest,
	// 0 for none.
	Wakes  []RuleWake
	WakeAt int64

	// KPI streams: the stock status last reported (StockSeq changes so far,
	// the last at StockAt), the version of the last count's record and the
	// source of that count.
	StockSeq     int32
	StockOut     bool
	StockAt      int64
	CountVersion int32
	CountSource  string
}

// RuleWake is when one rule asked to be evaluated again on a timer.
type RuleWake struct {
	Rule string
	At   int64
}

// Movement is one applied change of the ledger.
type Movement struct {
	At    int64
	Delta float64
}

// SourceSeen is the newest event time of one source on one key.
type SourceSeen struct {
	Source string
	Last   int64
}

// Transfer is one transfer as seen by its destination key.
type Transfer struct {
	ID       string
	Peer     string  // the origin location
	Qty      float64 // shipped quantity (0 while unknown)
	Received float64 // received so far
	At       int64   // shipped at, or received at for unmatched receipts
}

// Demand holds daily demand statistics: exponentially weighted mean and mean
// square of units sold per day, overall and per weekday, with zero-sale days
// counted (retail demand at SKU-store level is mostly intermittent).
type Demand struct {
	Day   int32   // UTC day number of Today
	Today float64 // units sold so far on Day
	// Censored is true when Day saw the shelf empty: its sales say how much
	// stock there was, not how much demand, so the day is not folded in.
	Censored bool
	Days     int32 // completed days observed
	Mean     float64
	Sq       float64
	WDays    [7]int32
	WMean    [7]float64
	WSq      [7]float64
}

// entryFormat 6 writes integral numbers as varints and movement times as
// deltas (a row is about half the size of format 5's, which it still reads).
const entryFormat = 6

// Bounds that keep an entry small whatever a source sends.
const (
	MaxReceived  = 8
	MaxUnmatched = 16
	MaxRecent    = 32
)

var errShort = errors.New("state: entry truncated")

// MarshalBinary encodes the entry. The format is private to this package and
// versioned by its first byte.
func (e *Entry) MarshalBinary() ([]byte, error) { return e.appendBinary(make([]byte, 0, 256)) }

func (e *Entry) appendBinary(b []byte) ([]byte, error) {
	b = append(b, entryFormat)
	b = putStr(b, e.Category)
	b = putF(b, e.OnHand)
	b = putF(b, e.UnitCost)
	b = binary.AppendVarint(b, e.FirstSeen)
	b = binary.AppendVarint(b, e.LastEvent)
	b = binary.AppendVarint(b, e.LastSale)
	b = binary.AppendVarint(b, e.LastEval)
	b = append(b, flag(e.HasCount)|flag(e.Baselined)<<1)
	b = binary.AppendVarint(b, e.LastCount)
	b = putF(b, e.LastCountQty)
	b = binary.AppendVarint(b, e.PrevCount)
	b = putF(b, e.CountVariance)
	b = putF(b, e.CountLedgerBefore)
	b = binary.AppendUvarint(b, uint64(len(e.Sources)))
	for _, s := range e.Sources {
		b = putStr(b, s.Source)
		b = binary.AppendVarint(b, s.Last)
	}
	b = putStr(b, e.SnapshotSource)
	b = putF(b, e.SnapshotOnHand)
	b = putF(b, e.SnapshotDiff)
	b = binary.AppendVarint(b, e.SnapshotAt)
	d := &e.Demand
	b = binary.AppendVarint(b, int64(d.Day))
	b = putF(b, d.Today)
	b = append(b, flag(d.Censored))
	b = binary.AppendVarint(b, int64(d.Days))
	b = putF(b, d.Mean)
	b = putF(b, d.Sq)
	for i := 0; i < 7; i++ {
		b = binary.AppendVarint(b, int64(d.WDays[i]))
		b = putF(b, d.WMean[i])
		b = putF(b, d.WSq[i])
	}
	for _, list := range [][]Transfer{e.InTransit, e.Received, e.Unmatched} {
		b = binary.AppendUvarint(b, uint64(len(list)))
		for _, t := range list {
			b = putStr(b, t.ID)
			b = putStr(b, t.Peer)
			b = putF(b, t.Qty)
			b = putF(b, t.Received)
			b = binary.AppendVarint(b, t.At)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(e.Open)))
	for i := range e.Open {
		j := e.Open[i].Encoded
		if j == nil {
			var err error
			if j, err = json.Marshal(&e.Open[i]); err != nil {
				return nil, fmt.Errorf("state: encode open exception %s: %w", e.Open[i].ExceptionID, err)
			}
		}
		b = binary.AppendUvarint(b, uint64(len(j)))
		b = append(b, j...)
	}
	b = binary.AppendUvarint(b, uint64(len(e.Recent)))
	var at int64
	for _, m := range e.Recent {
		b = binary.AppendVarint(b, m.At-at)
		b = putF(b, m.Delta)
		at = m.At
	}
	b = binary.AppendVarint(b, e.NegativeSince)
	b = binary.AppendUvarint(b, uint64(len(e.Wakes)))
	for _, w := range e.Wakes {
		b = putStr(b, w.Rule)
		b = binary.AppendVarint(b, w.At)
	}
	b = binary.AppendVarint(b, e.WakeAt)
	b = binary.AppendVarint(b, int64(e.StockSeq))
	b = append(b, flag(e.StockOut))
	b = binary.AppendVarint(b, e.StockAt)
	b = binary.AppendVarint(b, int64(e.CountVersion))
	b = putStr(b, e.CountSource)
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary wrote.
func (e *Entry) UnmarshalBinary(b []byte) error {
	r := reader{b: b}
	v := r.byte()
	switch v {
	case entryFormat:
		r.compact = true
	case 5:
	default:
		return fmt.Errorf("state: entry format %d, want %d", v, entryFormat)
	}
	*e = Entry{}
	e.Category = r.str()
	e.OnHand = r.f()
	e.UnitCost = r.f()
	e.FirstSeen = r.varint()
	e.LastEvent = r.varint()
	e.LastSale = r.varint()
	e.LastEval = r.varint()
	flags := r.byte()
	e.HasCount, e.Baselined = flags&1 != 0, flags&2 != 0
	e.LastCount = r.varint()
	e.LastCountQty = r.f()
	e.PrevCount = r.varint()
	e.CountVariance = r.f()
	e.CountLedgerBefore = r.f()
	if n := r.count(); n > 0 {
		e.Sources = make([]SourceSeen, n)
		for i := range e.Sources {
			e.Sources[i] = SourceSeen{Source: r.str(), Last: r.varint()}
		}
	}
	e.SnapshotSource = r.str()
	e.SnapshotOnHand = r.f()
	e.SnapshotDiff = r.f()
	e.SnapshotAt = r.varint()
	d := &e.Demand
	d.Day = int32(r.varint())
	d.Today = r.f()
	d.Censored = r.byte() == 1
	d.Days = int32(r.varint())
	d.Mean = r.f()
	d.Sq = r.f()
	for i := 0; i < 7; i++ {
		d.WDays[i] = int32(r.varint())
		d.WMean[i] = r.f()
		d.WSq[i] = r.f()
	}
	for _, dst := range []*[]Transfer{&e.InTransit, &e.Received, &e.Unmatched} {
		n := r.count()
		if n == 0 {
			continue
		}
		list := make([]Transfer, n)
		for i := range list {
			list[i] = Transfer{ID: r.str(), Peer: r.str(), Qty: r.f(), Received: r.f(), At: r.varint()}
		}
		*dst = list
	}
	if n := r.count(); n > 0 {
		e.Open = make([]Exception, n)
		for i := range e.Open {
			j := r.bytes()
			if r.err != nil {
				break
			}
			if err := json.Unmarshal(j, &e.Open[i]); err != nil {
				return fmt.Errorf("state: decode open exception: %w", err)
			}
			e.Open[i].Encoded = append([]byte(nil), j...)
		}
	}
	if n := r.count(); n > 0 {
		e.Recent = make([]Movement, n)
		var at int64
		for i := range e.Recent {
			d := r.varint()
			if r.compact {
				d += at
			}
			e.Recent[i] = Movement{At: d, Delta: r.f()}
			at = d
		}
	}
	e.NegativeSince = r.varint()
	if n := r.count(); n > 0 {
		e.Wakes = make([]RuleWake, n)
		for i := range e.Wakes {
			e.Wakes[i] = RuleWake{Rule: r.str(), At: r.varint()}
		}
	}
	e.WakeAt = r.varint()
	if r.compact {
		e.StockSeq = int32(r.varint())
		e.StockOut = r.byte() == 1
		e.StockAt = r.varint()
		e.CountVersion = int32(r.varint())
		e.CountSource = r.str()
	}
	return r.err
}

func flag(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func putStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// putF writes a whole number of at most 2^52 as an even varint (twice the
// number: most quantities, costs in cents aside, are whole) and any other
// number as the odd varint 1 and its 8 bytes.
func putF(b []byte, f float64) []byte {
	if f == math.Trunc(f) && math.Abs(f) <= 1<<52 && !(f == 0 && math.Signbit(f)) {
		return binary.AppendVarint(b, int64(f)*2)
	}
	b = binary.AppendVarint(b, 1)
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
}

// reader decodes with a sticky error, so the decoder reads as a list of fields.
type reader struct {
	b       []byte
	err     error
	compact bool // format 6 numbers (putF); format 5 wrote 8 bytes each
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errShort
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) f() float64 {
	if r.compact {
		switch v := r.varint(); {
		case r.err != nil:
			return 0
		case v&1 == 0:
			return float64(v / 2)
		case v != 1:
			r.err = errors.New("state: entry number has an unknown tag")
			r.b = nil
			return 0
		}
	}
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a list length, refusing one longer than the bytes left.
func (r *reader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *reader) bytes() []byte {
	n := r.count()
	if r.err != nil || n > len(r.b) {
		r.fail()
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string { return string(r.bytes()) }
