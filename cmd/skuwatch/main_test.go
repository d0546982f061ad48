package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skuwatch/skuwatch/sources/synth"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestEndToEndPrecisionRecall generates the demo's retail chain, replays it
// through the command and scores every default rule against the labels.
func TestEndToEndPrecisionRecall(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	if _, err := generate(synth.Config{Stores: 20, SKUs: 100, Days: 70, Seed: 1}, p("events.jsonl"), p("labels.jsonl")); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCLI("replay", "--rules", "../../rules/default.yaml", "--events", p("events.jsonl"),
		"--out", p("out.jsonl"), "--dlq", p("dlq.jsonl"))
	if code != 0 {
		t.Fatalf("replay exit %d: %s", code, stderr)
	}
	var sum map[string]any
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("summary %q: %v", out, err)
	}
	for _, k := range []string{"events", "processed", "dead_lettered", "exceptions_opened", "exceptions_resolved"} {
		if _, ok := sum[k]; !ok {
			t.Errorf("summary lacks %s: %s", k, out)
		}
	}
	if sum["events"].(float64) != sum["processed"].(float64)+sum["dead_lettered"].(float64) {
		t.Errorf("events ≠ processed + dead_lettered: %s", out)
	}
	labels, err := readLabels(p("labels.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	dets, err := readDetections(p("out.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	scores := synth.Score(labels, dets)
	seen := map[string]bool{}
	for _, s := range scores {
		seen[s.Rule] = true
		t.Logf("%-18s labels %3d detections %3d precision %.3f recall %.3f", s.Rule, s.Labels, s.Detections, s.Precision, s.Recall)
		if s.Precision < 0.95 || s.Recall < 0.95 {
			t.Errorf("%s: precision %.3f recall %.3f, want both ≥ 0.95; false positives %+v; missed %+v",
				s.Rule, s.Precision, s.Recall, s.FalsePositiveSamples, s.MissedSamples)
		}
	}
	for _, r := range []string{"negative_stock", "demand_spike", "transfer_mismatch", "count_variance", "stale_count"} {
		if !seen[r] {
			t.Errorf("no labels or detections for %s", r)
		}
	}
}

func TestRulesCommands(t *testing.T) {
	if code, out, _ := runCLI("rules", "check", "../../rules/default.yaml"); code != 0 || !strings.Contains(out, "ok") {
		t.Errorf("check default: %d %s", code, out)
	}
	if code, out, _ := runCLI("rules", "test", "../../rules/default.yaml"); code != 0 || !strings.Contains(out, "tests passed") {
		t.Errorf("test default: %d %s", code, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("version: x\nrules: [{id: a, when: 'state.nope'}]\n"), 0o644)
	code, _, stderr := runCLI("rules", "check", bad)
	if code != 1 || !strings.Contains(stderr, "bad.yaml:2:") {
		t.Errorf("bad file: exit %d, %s", code, stderr)
	}
	if code, _, _ := runCLI("rules", "check"); code != 1 {
		t.Errorf("missing file argument: exit %d", code)
	}
}

func TestReplayFlags(t *testing.T) {
	if code, _, stderr := runCLI("replay", "--rules", "x"); code != 1 || !strings.Contains(stderr, "is required") {
		t.Errorf("missing flags: exit %d %s", code, stderr)
	}
	if code, _, _ := runCLI("nope"); code != 1 {
		t.Errorf("unknown command: exit %d", code)
	}
}
