package state

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"
)

// sampleEntry sets every field of an entry.
func sampleEntry() Entry {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	return Entry{Category: "grocery", OnHand: -3.5, UnitCost: 2, FirstSeen: 1, LastEvent: 2, LastSale: 3, LastEval: 19,
		Baselined: true, HasCount: true, LastCount: 4, LastCountQty: 5, PrevCount: 6, CountVariance: -1, CountLedgerBefore: 6,
		Sources:        []SourceSeen{{"pos", 7}, {"wms", 8}},
		SnapshotSource: "shopify", SnapshotOnHand: 9, SnapshotDiff: 1, SnapshotAt: 10,
		Demand:    Demand{Day: 20000, Today: 3, Censored: true, Days: 30, Mean: 1.5, Sq: 4, WDays: [7]int32{1, 2, 3, 4, 5, 6, 7}, WMean: [7]float64{1, 2}, WSq: [7]float64{3}},
		InTransit: []Transfer{{ID: "T1", Peer: "WH", Qty: 4, At: 11}},
		Received:  []Transfer{{ID: "T0", Peer: "WH", Qty: 4, Received: 3, At: 9}},
		Unmatched: []Transfer{{ID: "T9", Received: 1, At: 13}},
		Open: []Exception{{ExceptionID: "x1", Rule: "negative_stock", Severity: 3, Score: 50, Status: StatusOpen,
			DetectedAt: now, UpdatedAt: now, EventTime: now, SLADueAt: now, Evidence: map[string]any{"on_hand": -3.5}, Version: 2}},
		Recent: []Movement{{15, -2}, {16, 5}}, NegativeSince: 17,
		Wakes:  []RuleWake{{"stale_count", 18}},
		WakeAt: 14,
	}
}

func TestEntryRoundTrip(t *testing.T) {
	e := sampleEntry()
	e.UnitCost, e.SnapshotOnHand, e.Demand.Mean = 2.49, 1e300, -(1<<52 + 2) // numbers a varint does not hold
	e.StockSeq, e.StockOut, e.StockAt, e.CountVersion, e.CountSource = 3, true, 21, 2, "wms"
	e.Recent = append(e.Recent, Movement{At: 1_780_000_000_000_000_000, Delta: 0.25}, Movement{At: 3, Delta: -1})
	b, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got Entry
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if got.Open[0].Encoded == nil {
		t.Error("decoded open exception keeps no encoding")
	}
	got.Open[0].Encoded = nil
	if !reflect.DeepEqual(got, e) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, e)
	}
	for n := 0; n < len(b); n++ {
		if err := new(Entry).UnmarshalBinary(b[:n]); err == nil {
			t.Fatalf("truncated entry of %d/%d bytes decoded without error", n, len(b))
		}
	}
}

func TestStoreOutboxCursorTimers(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := s.NewBatch()
	for i := uint64(1); i <= 5; i++ {
		if err := b.Append(StreamExceptions, i, []byte{byte('a' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	b.Append(StreamDeadLetter, 1, []byte("dl"))
	b.SetTimer(300, "k3")
	b.SetTimer(100, "k1")
	b.SetTimer(100, "k0")
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	rows, err := s.ReadOutbox(StreamExceptions, 2, 10)
	if err != nil || len(rows) != 3 || rows[0].Seq != 3 {
		t.Fatalf("ReadOutbox after 2 = %v, %v", rows, err)
	}
	if head, _ := s.OutboxHead(StreamExceptions); head != 5 {
		t.Errorf("head = %d, want 5", head)
	}
	if err := s.SetCursor("sink", 4, []byte("cp")); err != nil {
		t.Fatal(err)
	}
	seq, cp, err := s.Cursor("sink")
	if err != nil || seq != 4 || string(cp) != "cp" {
		t.Errorf("cursor = %d %q %v", seq, cp, err)
	}
	if err := s.PruneOutbox(StreamExceptions, 4); err != nil {
		t.Fatal(err)
	}
	if rows, _ := s.ReadOutbox(StreamExceptions, 0, 10); len(rows) != 1 || rows[0].Seq != 5 {
		t.Errorf("after prune: %v", rows)
	}
	if rows, _ := s.ReadOutbox(StreamDeadLetter, 0, 10); len(rows) != 1 {
		t.Errorf("pruning one stream touched another: %v", rows)
	}
	due, err := s.DueTimers(Timer{}, 200, 10)
	if err != nil || len(due) != 2 || due[0] != (Timer{100, "k0"}) || due[1] != (Timer{100, "k1"}) {
		t.Errorf("DueTimers(200) = %v, %v", due, err)
	}
	after, _ := s.DueTimers(Timer{100, "k0"}, 1000, 10)
	if len(after) != 2 || after[0] != (Timer{100, "k1"}) {
		t.Errorf("DueTimers after (100,k0) = %v", after)
	}
}

func TestEntryReadsFormat5(t *testing.T) {
	// sampleEntry as format 5 (fixed 8-byte numbers, absolute movement times) wrote it.
	b, err := hex.DecodeString(format5Sample)
	if err != nil {
		t.Fatal(err)
	}
	var got Entry
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	got.Open[0].Encoded = nil
	if want := sampleEntry(); !reflect.DeepEqual(got, want) {
		t.Errorf("format 5:\n got %+v\nwant %+v", got, want)
	}
	e := sampleEntry()
	now, _ := e.MarshalBinary()
	if len(now) >= len(b) {
		t.Errorf("format %d is %d bytes, format 5 %d", entryFormat, len(now), len(b))
	}
}

const format5Sample = "" +
	"050767726f636572790000000000000cc0000000000000004002040626030800000000000014400c000000000000f0bf" +
	"00000000000018400203706f730e03776d73100773686f706966790000000000002240000000000000f03f14c0b80200" +
	"00000000000840013c000000000000f83f000000000000104002000000000000f03f0000000000000840040000000000" +
	"0000400000000000000000060000000000000000000000000000000008000000000000000000000000000000000a0000" +
	"00000000000000000000000000000c000000000000000000000000000000000e00000000000000000000000000000000" +
	"010254310257480000000000001040000000000000000016010254300257480000000000001040000000000000084012" +
	"01025439000000000000000000000000000000f03f1a01ae037b22657863657074696f6e5f6964223a227831222c2272" +
	"756c65223a226e656761746976655f73746f636b222c22736b75223a22222c226c6f636174696f6e223a22222c227365" +
	"766572697479223a332c2273636f7265223a35302c22737461747573223a226f70656e222c226368616e6765223a2222" +
	"2c2264657465637465645f6174223a22323032362d30362d30315430303a30303a30305a222c22757064617465645f61" +
	"74223a22323032362d30362d30315430303a30303a30305a222c227265736f6c7665645f6174223a6e756c6c2c226576" +
	"656e745f74696d65223a22323032362d30362d30315430303a30303a30305a222c2272756c657365745f76657273696f" +
	"6e223a22222c22726f757465223a22222c226f776e6572223a22222c22736c615f6475655f6174223a22323032362d30" +
	"362d30315430303a30303a30305a222c2265766964656e6365223a7b226f6e5f68616e64223a2d332e357d2c2266696e" +
	"616e6369616c5f696d70616374223a302c22747269676765725f736f75726365223a22222c22747269676765725f6576" +
	"656e745f6964223a22222c2276657273696f6e223a327d021e00000000000000c020000000000000144022010b737461" +
	"6c655f636f756e74241c"

func TestAppliedIDsByDay(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	day := int64(24 * time.Hour)
	t1, t2 := 20_000*day+5, 20_003*day+7 // two UTC days
	// An id of the layout before format 6 ('d', no day), as an old store has it.
	legacy := append([]byte{tagAppliedV1}, AppendDedupKey(nil, "pos", "old", 0)...)
	if err := s.db.Set(legacy, binary.BigEndian.AppendUint64(nil, uint64(t1)), nil); err != nil {
		t.Fatal(err)
	}
	b := s.NewBatch()
	b.MarkApplied(AppendDedupKey(nil, "pos", "e1", 0), t1)
	b.MarkApplied(AppendDedupKey(nil, "pos", "e2", 0), t2)
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(dir, Options{}); err != nil { // moves the legacy id into its day
		t.Fatal(err)
	}
	defer s.Close()
	has := func(id string, at int64) bool {
		ok, err := s.Applied(at, AppendDedupKey(nil, "pos", id, 0))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !has("old", t1) || !has("e1", t1) || !has("e2", t2) || has("e1", t2) {
		t.Fatal("applied ids not found by their event day")
	}
	var keys []string
	s.EachApplied(func(k []byte) { keys = append(keys, string(k)) })
	if len(keys) != 3 || keys[0] != string(AppendDedupKey(nil, "pos", "e1", 0)) {
		t.Errorf("EachApplied: %q", keys)
	}
	if pruned, err := s.PruneApplied(AppliedDay(t1)); err != nil || pruned {
		t.Errorf("nothing before day %d: pruned %v, %v", AppliedDay(t1), pruned, err)
	}
	if pruned, err := s.PruneApplied(AppliedDay(t2)); err != nil || !pruned {
		t.Errorf("prune before day %d: %v, %v", AppliedDay(t2), pruned, err)
	}
	if has("old", t1) || has("e1", t1) || !has("e2", t2) {
		t.Error("pruning kept an old day or dropped a new one")
	}
}

func TestSnapshotAndClear(t *testing.T) {
	src, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	b := src.NewBatch()
	e := sampleEntry()
	for i := 0; i < 300; i++ {
		if _, err := b.PutEntry(fmt.Sprintf("S%03d\x00L", i), &e, nil); err != nil {
			t.Fatal(err)
		}
	}
	b.MarkApplied(AppendDedupKey(nil, "pos", "e1", 0), 5)
	b.SetCursor("jsonl", 7, []byte("file"))
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	dst, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	old := dst.NewBatch()
	old.PutEntry("GONE\x00L", &e, nil)
	old.SetCursor("jsonl", 3, []byte("mine"))
	old.Commit(true)
	if err := dst.Clear(); err != nil {
		t.Fatal(err)
	}
	chunks := 0
	if err := src.Snapshot(16<<10, func(repr []byte) error { chunks++; return dst.ApplyRepr(repr) }); err != nil {
		t.Fatal(err)
	}
	if chunks < 2 {
		t.Errorf("%d chunks of at most 16 KiB for 300 rows", chunks)
	}
	var keys int
	dst.EachEntryKey(func([]byte) { keys++ })
	if _, gone, _ := dst.Entry("GONE\x00L"); gone || keys != 300 {
		t.Errorf("after clear and snapshot: %d rows, the old one kept: %v", keys, gone)
	}
	if ok, _ := dst.Applied(5, AppendDedupKey(nil, "pos", "e1", 0)); !ok {
		t.Error("applied id not in the snapshot")
	}
	if seq, cp, _ := dst.Cursor("jsonl"); seq != 3 || string(cp) != "mine" {
		t.Errorf("cursor %d %q: a snapshot must not carry cursors, nor Clear drop them", seq, cp)
	}
}

// TestNumberEncoding: every float comes back bit for bit; whole numbers
// within ±2^52 take a varint, everything else tag + 8 bytes.
func TestNumberEncoding(t *testing.T) {
	cases := []struct {
		f     float64
		short bool
	}{
		{0, true}, {math.Copysign(0, -1), false}, {1, true}, {-1, true}, {1 << 52, true}, {-(1 << 52), true},
		{1<<52 + 2, false}, {0.5, false}, {-2.25, false}, {math.NaN(), false}, {math.Inf(1), false},
		{math.Inf(-1), false}, {1e300, false}, {-1 << 63, false}, {1 << 63, false},
	}
	for _, c := range cases {
		b := putF(nil, c.f)
		if short := len(b) < 9; short != c.short {
			t.Errorf("%v: %d bytes, want the short form %v", c.f, len(b), c.short)
		}
		r := reader{b: b, compact: true}
		if got := r.f(); math.Float64bits(got) != math.Float64bits(c.f) || r.err != nil || len(r.b) != 0 {
			t.Errorf("%v: read back %v (err %v, %d bytes left)", c.f, got, r.err, len(r.b))
		}
	}
}
