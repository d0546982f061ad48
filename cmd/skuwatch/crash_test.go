package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/skuwatch/skuwatch/sinks/postgres/pgtest"
	"github.com/skuwatch/skuwatch/sources/synth"
	"github.com/skuwatch/skuwatch/state"
)

// TestMain lets the test binary stand in for skuwatch, so a test can run it
// as a child process and kill it.
func TestMain(m *testing.M) {
	if os.Getenv("SKUWATCH_AS_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestReplaySurvivesKill SIGKILLs a replay mid-stream, reruns it on the same
// data dir, and compares the outputs with an uninterrupted run's: the JSONL
// files byte for byte, and the PostgreSQL tables the killed runs also wrote
// with the uninterrupted run's final state.
func TestReplaySurvivesKill(t *testing.T) {
	schema := pgtest.Schema(t)
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	if _, err := generate(synth.Config{Stores: 20, SKUs: 100, Days: 60, Seed: 5}, p("events.jsonl"), p("labels.jsonl")); err != nil {
		t.Fatal(err)
	}
	args := func(out, dlq, data string) []string {
		return []string{"replay", "--rules", "../../rules/default.yaml", "--events", p("events.jsonl"),
			"--out", out, "--dlq", dlq, "--data", data, "--batch", "500"}
	}
	if code, _, stderr := runCLI(args(p("ref.jsonl"), p("ref-dlq.jsonl"), p("ref-state"))...); code != 0 {
		t.Fatalf("reference replay: %d %s", code, stderr)
	}
	withPG := func(a []string) []string { return append(a, "--postgres", pgtest.DSN(), "--postgres-schema", schema) }
	for round := 0; round < 2; round++ {
		out, dlq, data := p("out.jsonl"), p("dlq.jsonl"), p("state")
		if round == 0 {
			os.RemoveAll(data)
		}
		cmd := exec.Command(os.Args[0], withPG(args(out, dlq, data))...)
		cmd.Env = append(os.Environ(), "SKUWATCH_AS_MAIN=1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill once it has delivered something (or give up waiting and kill anyway).
		for i := 0; i < 400; i++ {
			if st, err := os.Stat(out); err == nil && st.Size() > int64(20_000*(round+1)) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		st, _ := os.Stat(out)
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		t.Logf("round %d: killed=%v with %d bytes of exceptions delivered", round, ws.Signaled(), st.Size())
		if round == 0 && !ws.Signaled() {
			t.Fatal("the replay finished before it could be killed; the stream is too small for this machine")
		}
	}
	code, _, stderr := runCLI(withPG(args(p("out.jsonl"), p("dlq.jsonl"), p("state")))...)
	if code != 0 {
		t.Fatalf("resumed replay: %d %s", code, stderr)
	}
	tablesMatchJSONL(t, schema, p("ref.jsonl"))
	for _, pair := range [][2]string{{"out.jsonl", "ref.jsonl"}, {"dlq.jsonl", "ref-dlq.jsonl"}} {
		got, _ := os.ReadFile(p(pair[0]))
		want, _ := os.ReadFile(p(pair[1]))
		if len(want) == 0 || !bytes.Equal(got, want) {
			t.Errorf("%s after two kills differs from the uninterrupted %s (%d vs %d bytes)", pair[0], pair[1], len(got), len(want))
		}
	}
}

// tablesMatchJSONL compares the exception tables of schema with the final
// state of an exceptions JSONL file: one current row per exception at its
// latest version, and every version once in exception_changes.
func tablesMatchJSONL(t *testing.T, schema, path string) {
	t.Helper()
	latest := map[string]state.Exception{}
	versions := 0
	err := eachJSONLine(path, func(b []byte) error {
		var x state.Exception
		if err := json.Unmarshal(b, &x); err != nil {
			return err
		}
		versions++
		if x.Version > latest[x.ExceptionID].Version {
			latest[x.ExceptionID] = x
		}
		return nil
	})
	if err != nil || len(latest) == 0 {
		t.Fatalf("%s: %d exceptions, %v", path, len(latest), err)
	}
	ctx := context.Background()
	admin := pgtest.Connect(t)
	var changes, distinct int
	if err := admin.QueryRow(ctx, "SELECT count(*), count(DISTINCT (exception_id, version)) FROM "+schema+".exception_changes").Scan(&changes, &distinct); err != nil {
		t.Fatal(err)
	}
	if changes != versions || distinct != versions {
		t.Errorf("exception_changes: %d rows (%d distinct), the JSONL has %d versions", changes, distinct, versions)
	}
	rows, err := admin.Query(ctx, `SELECT exception_id, version, status, rule, sku, location, severity, score, owner,
		detected_at, updated_at, resolved_at, sla_due_at, financial_impact::float8, evidence FROM `+schema+`.exceptions`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	// PostgreSQL keeps times to the microsecond.
	near := func(a, b time.Time) bool { d := a.Sub(b); return d < time.Microsecond && d > -time.Microsecond }
	n, differ := 0, 0
	for rows.Next() {
		var g state.Exception
		var evidence map[string]any
		if err := rows.Scan(&g.ExceptionID, &g.Version, &g.Status, &g.Rule, &g.SKU, &g.Location, &g.Severity, &g.Score, &g.Owner,
			&g.DetectedAt, &g.UpdatedAt, &g.ResolvedAt, &g.SLADueAt, &g.FinancialImpact, &evidence); err != nil {
			t.Fatal(err)
		}
		n++
		w, ok := latest[g.ExceptionID]
		if !ok {
			t.Errorf("%s is in PostgreSQL, not in the JSONL", g.ExceptionID)
			continue
		}
		same := g.Version == w.Version && g.Status == w.Status && g.Rule == w.Rule && g.SKU == w.SKU && g.Location == w.Location &&
			g.Severity == w.Severity && g.Score == w.Score && g.Owner == w.Owner && near(g.DetectedAt, w.DetectedAt) &&
			near(g.UpdatedAt, w.UpdatedAt) && near(g.SLADueAt, w.SLADueAt) && (g.ResolvedAt == nil) == (w.ResolvedAt == nil) &&
			(w.ResolvedAt == nil || near(*g.ResolvedAt, *w.ResolvedAt)) &&
			math.Abs(g.FinancialImpact-w.FinancialImpact) < 0.006 && reflect.DeepEqual(evidence, w.Evidence)
		if !same {
			if differ++; differ <= 3 {
				t.Errorf("%s differs:\n table %+v %v\n jsonl %+v", g.ExceptionID, g, evidence, w)
			}
		}
	}
	if differ > 0 {
		t.Errorf("%d of %d exceptions differ", differ, n)
	}
	if n != len(latest) {
		t.Errorf("%d exceptions in PostgreSQL, %d in the JSONL", n, len(latest))
	}
}
