package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skuwatch/skuwatch/sinks/postgres"
	"github.com/skuwatch/skuwatch/sinks/postgres/pgtest"
	"github.com/skuwatch/skuwatch/sources/synth"
	"github.com/skuwatch/skuwatch/state"
)

// TestReplayToPostgresAndKPI replays a chain into PostgreSQL, compares the
// tables with the JSONL sink's final state, and reads the KPI snapshot back
// with the reader's command, as a table and as JSON.
func TestReplayToPostgresAndKPI(t *testing.T) {
	schema := pgtest.Schema(t)
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	if _, err := generate(synth.Config{Stores: 6, SKUs: 40, Days: 50, Seed: 2}, p("events.jsonl"), p("labels.jsonl")); err != nil {
		t.Fatal(err)
	}
	replayArgs := []string{"replay", "--rules", "../../rules/default.yaml", "--events", p("events.jsonl"), "--out", p("out.jsonl"),
		"--dlq", p("dlq.jsonl"), "--postgres", pgtest.DSN(), "--postgres-schema", schema}
	if code, _, stderr := runCLI(replayArgs...); code != 0 {
		t.Fatalf("replay: %d %s", code, stderr)
	}
	tablesMatchJSONL(t, schema, p("out.jsonl"))

	// The opened exceptions of the whole history, by detection time.
	opened := 0
	var first time.Time
	eachJSONLine(p("out.jsonl"), func(b []byte) error {
		var x state.Exception
		json.Unmarshal(b, &x)
		if x.Change == "opened" {
			opened++
			if first.IsZero() || x.DetectedAt.Before(first) {
				first = x.DetectedAt
			}
		}
		return nil
	})
	since := first.Truncate(24 * time.Hour).Format(time.DateOnly)
	code, out, stderr := runCLI("kpi", "--postgres", pgtest.DSN(), "--postgres-schema", schema, "--since", since, "--json")
	if code != 0 {
		t.Fatalf("kpi: %d %s", code, stderr)
	}
	var s postgres.Snapshot
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("kpi --json: %v\n%s", err, out)
	}
	if s.Detected != int64(opened) || s.StockoutRate == nil || *s.StockoutRate <= 0 || *s.StockoutRate >= 0.5 ||
		s.InventoryAccuracy == nil || s.CountsTaken == 0 || s.MeanResolutionH == nil || s.SLAAdherence == nil || s.FinancialImpact <= 0 {
		t.Errorf("snapshot of the whole history (%d opened): %s", opened, out)
	}
	code, out, _ = runCLI("kpi", "--postgres", pgtest.DSN(), "--postgres-schema", schema, "--since", since)
	for _, want := range []string{"stockout rate", "inventory record accuracy", "resolution time", "SLA adherence", "financial impact"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("kpi table lacks %q (exit %d):\n%s", want, code, out)
		}
	}
	if code, _, stderr := runCLI("kpi", "--postgres", pgtest.DSN(), "--postgres-schema", schema, "--since", "June"); code != 1 || !strings.Contains(stderr, "--since") {
		t.Errorf("bad --since: exit %d %s", code, stderr)
	}
}
