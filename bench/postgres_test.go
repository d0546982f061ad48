package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/skuwatch/skuwatch/sinks"
	"github.com/skuwatch/skuwatch/sinks/postgres"
	"github.com/skuwatch/skuwatch/sinks/postgres/pgtest"
	"github.com/skuwatch/skuwatch/state"
)

// BenchmarkPostgresSink drains b.N exception versions (b.N/4 exceptions,
// four versions each, in outbox order) into PostgreSQL through the drainer:
// rows/s of the sink, transactions of 500 rows.
func BenchmarkPostgresSink(b *testing.B) {
	schema := pgtest.Schema(b)
	db, err := postgres.Open(context.Background(), pgtest.DSN(), postgres.Options{Schema: schema})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	store, err := state.Open(b.TempDir(), state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	n := max(b.N, 1000)
	t0 := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	batch := store.NewBatch()
	for i := 0; i < n; i++ {
		id, v := i%(n/4), i/(n/4)+1
		x := state.Exception{ExceptionID: fmt.Sprintf("x%07d", id), Rule: "negative_stock", SKU: fmt.Sprintf("SKU-%d", id%5000),
			Location: fmt.Sprintf("ST%02d", id%50), Severity: 3, Score: 50, Status: state.StatusOpen, Change: "updated",
			DetectedAt: t0, UpdatedAt: t0.Add(time.Duration(v) * time.Minute), EventTime: t0, RulesetVersion: "1",
			Route: "location", Owner: "store", SLADueAt: t0.Add(4 * time.Hour), Evidence: map[string]any{"on_hand": -v},
			FinancialImpact: 10, TriggerSource: "pos", TriggerEventID: fmt.Sprint(i), Version: v}
		j, _ := json.Marshal(&x)
		if err := batch.Append(state.StreamExceptions, uint64(i+1), j); err != nil {
			b.Fatal(err)
		}
	}
	if err := batch.Commit(false); err != nil {
		b.Fatal(err)
	}
	d, err := sinks.NewDrainer(store, db.Exceptions("pg"))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	got, err := d.Drain(context.Background())
	if err != nil || got != n {
		b.Fatalf("drained %d of %d: %v", got, n, err)
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "rows/s")
}
