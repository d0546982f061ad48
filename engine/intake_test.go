package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/skuwatch/skuwatch/sources"
)

func TestIntakeRejects(t *testing.T) {
	base := `"event_id":"e","source":"pos","sku":"S","location":"L","event_time":"2026-06-01T10:00:00Z"`
	now := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name, json, field, reason string
	}{
		{"missing sku", `{"event_id":"e","source":"pos","type":"sale","location":"L","qty":1,"event_time":"2026-06-01T10:00:00Z"}`, "sku", "required"},
		{"unknown type", `{` + base + `,"type":"sold","qty":1}`, "type", "unknown type"},
		{"internal type", `{` + base + `,"type":"transfer_expected","qty":1}`, "type", "internal"},
		{"zero sale", `{` + base + `,"type":"sale","qty":0}`, "qty", "> 0"},
		{"negative receipt", `{` + base + `,"type":"receipt","qty":-3}`, "qty", "> 0"},
		{"sale without qty", `{` + base + `,"type":"sale"}`, "qty", "required"},
		{"zero adjustment", `{` + base + `,"type":"adjustment","qty":0}`, "qty", "changes nothing"},
		{"count without on_hand", `{` + base + `,"type":"count"}`, "on_hand", "required"},
		{"negative count", `{` + base + `,"type":"count","on_hand":-1}`, "on_hand", "negative"},
		{"transfer_out without id", `{` + base + `,"type":"transfer_out","qty":1,"to_location":"L2"}`, "transfer_id", "required"},
		{"transfer_out to itself", `{` + base + `,"type":"transfer_out","qty":1,"transfer_id":"T","to_location":"L"}`, "to_location", "equals"},
		{"transfer_in without origin", `{` + base + `,"type":"transfer_in","qty":1,"transfer_id":"T"}`, "from_location", "required"},
		{"unknown source", `{"event_id":"e","source":"sap","type":"sale","sku":"S","location":"L","qty":1,"event_time":"2026-06-01T10:00:00Z"}`, "source", "unknown source"},
		{"no time", `{"event_id":"e","source":"pos","type":"sale","sku":"S","location":"L","qty":1}`, "event_time", "required"},
		{"far future", `{"event_id":"e","source":"pos","type":"sale","sku":"S","location":"L","qty":1,"event_time":"2026-06-02T10:00:00Z"}`, "event_time", "ahead of the clock"},
		{"control char", `{"event_id":"e","source":"pos","type":"sale","sku":"S\u0000","location":"L","qty":1,"event_time":"2026-06-01T10:00:00Z"}`, "sku", "control"},
		{"spaces", `{"event_id":"e","source":"pos","type":"sale","sku":" S","location":"L","qty":1,"event_time":"2026-06-01T10:00:00Z"}`, "sku", "spaces"},
		{"negative cost", `{` + base + `,"type":"sale","qty":1,"unit_cost":-1}`, "unit_cost", "negative"},
	}
	in := NewIntake(IntakeConfig{MaxFutureSkew: time.Hour})
	for _, c := range cases {
		_, rej := in.Accept(nil, []byte(c.json), now)
		if rej == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if rej.Field != c.field || !strings.Contains(rej.Reason, c.reason) {
			t.Errorf("%s: rejected on %q with %q, want field %q and %q", c.name, rej.Field, rej.Reason, c.field, c.reason)
		}
	}
}

func TestIntakeTransferFanOut(t *testing.T) {
	in := NewIntake(IntakeConfig{})
	out, rej := in.Accept(nil, []byte(`{"event_id":"t","source":"wms","type":"transfer_out","sku":"S","location":"WH","to_location":"ST","transfer_id":"T1","qty":4,"event_time":"2026-06-01T10:00:00Z"}`), time.Time{})
	if rej != nil || len(out) != 2 {
		t.Fatalf("got %v %v", out, rej)
	}
	leg := out[1]
	if leg.Type != sources.TypeTransferExpected || leg.Location != "ST" || leg.FromLocation != "WH" || leg.Qty != 4 || leg.TransferID != "T1" {
		t.Errorf("destination leg %+v", leg)
	}
}

// TestAcceptLedger: the ledger takes the intake stage's stamped records as
// they are, and validates canonical JSON from other producers with the
// configured sources.
func TestAcceptLedger(t *testing.T) {
	now := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	sap := sources.Event{EventID: "e", Source: "sap", Type: sources.TypeSale, SKU: "S", Location: "L", Qty: 1, HasQty: true, EventTime: now}
	plain, configured := NewIntake(IntakeConfig{}), NewIntake(IntakeConfig{Sources: []string{"sap"}})
	if _, _, rej := plain.acceptLedger(sources.AppendJSON(nil, &sap), now); rej == nil || rej.Field != "source" {
		t.Errorf("JSON from an unknown source: %v, want a rejection on source", rej)
	}
	id := intakeID{1, 2, 3, 4, 5, 6, 7, 8}
	ev, st, rej := configured.acceptLedger(sources.AppendJSON(nil, &sap), now)
	if rej != nil || ev != sap || st.ok {
		t.Errorf("JSON: %+v, %+v, %v; want the event, unstamped", ev, st, rej)
	}
	ev, st, rej = plain.acceptLedger(appendLedgerRecord(nil, id, 12345, &sap), now)
	if rej != nil || ev != sap || st != (stamp{intake: id, watermark: 12345, ok: true}) {
		t.Errorf("stamped record: %+v, %+v, %v; want the event, stamped", ev, st, rej)
	}
	good := appendLedgerRecord(nil, id, 12345, &sap)
	for n := 1; n < len(good); n++ {
		if _, _, rej := plain.acceptLedger(good[:n], now); rej == nil {
			t.Errorf("first %d of %d bytes accepted", n, len(good))
		}
	}
}
