package state

import (
	"reflect"
	"testing"
	"time"
)

func TestEntryRoundTrip(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	e := Entry{Category: "grocery", OnHand: -3.5, UnitCost: 2, FirstSeen: 1, LastEvent: 2, LastSale: 3, LastEval: 19,
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
