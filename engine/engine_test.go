package engine

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/skuwatch/skuwatch/rules"
	"github.com/skuwatch/skuwatch/sources/synth"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func defaultRules(t testing.TB) *Rules {
	t.Helper()
	rs, err := LoadRulesBytes("default.yaml", rules.Default)
	if err != nil {
		t.Fatal(err)
	}
	return NewRules(rs, nil)
}

type replayFiles struct{ events, out, dlq, data string }

func newFiles(t testing.TB, events string) replayFiles {
	d := t.TempDir()
	return replayFiles{events, filepath.Join(d, "out.jsonl"), filepath.Join(d, "dlq.jsonl"), filepath.Join(d, "state")}
}

func replay(t testing.TB, f replayFiles, batch int) Summary {
	t.Helper()
	s, err := Replay(context.Background(), ReplayConfig{Rules: defaultRules(t), EventsPath: f.events,
		OutPath: f.out, DLQPath: f.dlq, DataDir: f.data, BatchLines: batch})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReplayGolden pins the rule outcomes of a small hand-written stream
// (negative stock and its recovery, a duplicate, a dead letter, a count
// variance, a short receipt, an overdue transfer, a late sale, a stale
// count) to testdata/golden_exceptions.jsonl.
func TestReplayGolden(t *testing.T) {
	f := newFiles(t, "testdata/golden_events.jsonl")
	s := replay(t, f, 3)
	if s.Events != 18 || s.Processed != 17 || s.DeadLettered != 1 || s.Duplicates != 1 || s.Late != 1 {
		t.Errorf("summary %+v", s)
	}
	got := read(t, f.out)
	const golden = "testdata/golden_exceptions.jsonl"
	if *update {
		os.WriteFile(golden, got, 0o644)
	}
	if want := read(t, golden); !bytes.Equal(got, want) {
		t.Errorf("exceptions differ from %s (go test -update to accept):\n%s", golden, got)
	}
	for _, rule := range []string{"negative_stock", "count_variance", "transfer_mismatch", "stale_count"} {
		if !bytes.Contains(got, []byte(`"rule":"`+rule+`"`)) {
			t.Errorf("golden stream raised no %s", rule)
		}
	}
	dlq := read(t, f.dlq)
	if !bytes.Contains(dlq, []byte(`must be \u003e 0 for sale`)) && !bytes.Contains(dlq, []byte(`must be > 0 for sale`)) {
		t.Errorf("dead letter lacks its reason: %s", dlq)
	}
	if !bytes.Contains(dlq, []byte(`"raw":"{\"event_id\":\"bad1\"`)) {
		t.Errorf("dead letter lacks the original bytes: %s", dlq)
	}
}

func genEvents(t testing.TB, cfg synth.Config) (string, []synth.Label) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	labels, _, err := synth.Generate(cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	return path, labels
}

var small = synth.Config{Stores: 4, SKUs: 25, Days: 45, Seed: 3}

// TestReplayDeterministic: the same input gives byte-identical outputs,
// whatever the batch size.
func TestReplayDeterministic(t *testing.T) {
	events, _ := genEvents(t, small)
	a, b := newFiles(t, events), newFiles(t, events)
	sa, sb := replay(t, a, 500), replay(t, b, 1777)
	if sa != sb {
		t.Errorf("summaries differ: %+v vs %+v", sa, sb)
	}
	if sa.Events != sa.Processed+sa.DeadLettered || sa.DeadLettered == 0 || sa.ExceptionsOpened == 0 {
		t.Errorf("implausible summary %+v", sa)
	}
	if !bytes.Equal(read(t, a.out), read(t, b.out)) || !bytes.Equal(read(t, a.dlq), read(t, b.dlq)) {
		t.Error("outputs of two replays of the same input differ")
	}
}

// TestReplayCrashResume stops a replay mid-stream (no final commit, sinks
// not closed cleanly), reopens the same data dir and finishes: the outputs
// equal an uninterrupted run's.
func TestReplayCrashResume(t *testing.T) {
	events, _ := genEvents(t, small)
	ref := newFiles(t, events)
	want := replay(t, ref, 400)
	for _, stop := range []int{1, 399, 400, 401, 5000} {
		f := newFiles(t, events)
		_, err := Replay(context.Background(), ReplayConfig{Rules: defaultRules(t), EventsPath: events,
			OutPath: f.out, DLQPath: f.dlq, DataDir: f.data, BatchLines: 400, stopAfter: stop})
		if err != errCrash {
			t.Fatalf("stop at %d: %v", stop, err)
		}
		got := replay(t, f, 400)
		if got != want {
			t.Errorf("stop at %d: summary %+v, want %+v", stop, got, want)
		}
		if !bytes.Equal(read(t, f.out), read(t, ref.out)) || !bytes.Equal(read(t, f.dlq), read(t, ref.dlq)) {
			t.Errorf("stop at %d: outputs differ from an uninterrupted run", stop)
		}
	}
}

// TestReplayOtherInput refuses to resume a data dir against another file.
func TestReplayOtherInput(t *testing.T) {
	events, _ := genEvents(t, small)
	f := newFiles(t, events)
	replay(t, f, 1000)
	other := newFiles(t, "testdata/golden_events.jsonl")
	other.data = f.data
	_, err := Replay(context.Background(), ReplayConfig{Rules: defaultRules(t), EventsPath: other.events,
		OutPath: other.out, DLQPath: other.dlq, DataDir: other.data})
	if err != ErrOtherInput {
		t.Errorf("got %v, want ErrOtherInput", err)
	}
}

func TestLoadRulesRejectsFailingTests(t *testing.T) {
	bad := strings.Replace(string(rules.Default), "expect: [negative_stock]", "expect: [demand_spike]", 1)
	_, err := LoadRulesBytes("bad.yaml", []byte(bad))
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:") || !strings.Contains(err.Error(), "want open [demand_spike]") {
		t.Errorf("got %v", err)
	}
}
