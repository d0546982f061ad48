package engine

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/skuwatch/skuwatch/sinks"
	"github.com/skuwatch/skuwatch/state"
)

// memSink keeps what it is given.
type memSink struct {
	name   string
	stream state.Stream
	rows   [][]byte
}

func (m *memSink) Name() string         { return m.name }
func (m *memSink) Stream() state.Stream { return m.stream }
func (m *memSink) Open([]byte) error    { m.rows = nil; return nil }
func (m *memSink) Close() error         { return nil }
func (m *memSink) Write(_ context.Context, rows []state.Row) ([]byte, error) {
	for _, r := range rows {
		m.rows = append(m.rows, r.Value)
	}
	return nil, nil
}

func TestKPIStreams(t *testing.T) {
	// A count opens the ledger at 2 (no count record: nothing to compare
	// with); two sales empty it (out of stock), a receipt refills it; a
	// count of 4 against a ledger of 5 is a record of variance -1, and a
	// sale from before it that arrives after it corrects the record.
	lines := []string{
		`{"event_id":"c1","source":"wms","type":"count","sku":"S","location":"L","on_hand":2,"category":"toys","event_time":"2026-06-01T08:00:00Z"}`,
		`{"event_id":"s1","source":"pos","type":"sale","sku":"S","location":"L","qty":1,"event_time":"2026-06-01T09:00:00Z"}`,
		`{"event_id":"s2","source":"pos","type":"sale","sku":"S","location":"L","qty":1,"event_time":"2026-06-01T10:00:00Z"}`,
		`{"event_id":"r1","source":"wms","type":"receipt","sku":"S","location":"L","qty":5,"unit_cost":3,"event_time":"2026-06-02T10:00:00Z"}`,
		`{"event_id":"c2","source":"wms","type":"count","sku":"S","location":"L","on_hand":4,"event_time":"2026-06-03T08:00:00Z"}`,
		`{"event_id":"s3","source":"pos","type":"sale","sku":"S","location":"L","qty":1,"event_time":"2026-06-03T07:00:00Z"}`,
	}
	events := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(events, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := newFiles(t, events)
	stock, counts := &memSink{name: "stock", stream: state.StreamStock}, &memSink{name: "counts", stream: state.StreamCounts}
	if _, err := Replay(context.Background(), ReplayConfig{Rules: defaultRules(t), EventsPath: f.events, OutPath: f.out,
		DLQPath: f.dlq, DataDir: f.data, ExtraSinks: []sinks.Sink{stock, counts}, BatchLines: 2}); err != nil {
		t.Fatal(err)
	}
	wantStock := []state.StockChange{
		{SKU: "S", Location: "L", Category: "toys", Seq: 1, At: at("2026-06-01T08:00:00Z"), OnHand: 2},
		{SKU: "S", Location: "L", Category: "toys", Seq: 2, At: at("2026-06-01T10:00:00Z"), OutOfStock: true, OnHand: 0},
		{SKU: "S", Location: "L", Category: "toys", Seq: 3, At: at("2026-06-02T10:00:00Z"), OnHand: 5},
	}
	if got := decodeAll[state.StockChange](t, stock.rows); !reflect.DeepEqual(got, wantStock) {
		t.Errorf("stock changes:\n got %+v\nwant %+v", got, wantStock)
	}
	c := state.CountRecord{SKU: "S", Location: "L", Category: "toys", CountedAt: at("2026-06-03T08:00:00Z"), Source: "wms",
		Counted: 4, System: 5, Variance: -1, UnitCost: 3, Version: 1}
	c2 := c
	c2.System, c2.Variance, c2.Version = 4, 0, 2
	if got, want := decodeAll[state.CountRecord](t, counts.rows), []state.CountRecord{c, c2}; !reflect.DeepEqual(got, want) {
		t.Errorf("count records:\n got %+v\nwant %+v", got, want)
	}

	// Without a sink for them, the streams are not written at all.
	f = newFiles(t, events)
	replay(t, f, 2)
	store, err := state.Open(f.data, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, st := range []state.Stream{state.StreamStock, state.StreamCounts} {
		if rows, err := store.ReadOutbox(st, 0, 10); err != nil || len(rows) != 0 {
			t.Errorf("%s: %d rows without a sink (%v)", st, len(rows), err)
		}
	}
}

func at(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }

func decodeAll[T any](t *testing.T, rows [][]byte) []T {
	var out []T
	for _, r := range rows {
		var v T
		if err := json.Unmarshal(r, &v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}
