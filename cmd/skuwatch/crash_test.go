package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/skuwatch/skuwatch/sources/synth"
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
// data dir, and compares the outputs with an uninterrupted run's.
func TestReplaySurvivesKill(t *testing.T) {
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
	for round := 0; round < 2; round++ {
		out, dlq, data := p("out.jsonl"), p("dlq.jsonl"), p("state")
		if round == 0 {
			os.RemoveAll(data)
		}
		cmd := exec.Command(os.Args[0], args(out, dlq, data)...)
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
	code, _, stderr := runCLI(args(p("out.jsonl"), p("dlq.jsonl"), p("state"))...)
	if code != 0 {
		t.Fatalf("resumed replay: %d %s", code, stderr)
	}
	for _, pair := range [][2]string{{"out.jsonl", "ref.jsonl"}, {"dlq.jsonl", "ref-dlq.jsonl"}} {
		got, _ := os.ReadFile(p(pair[0]))
		want, _ := os.ReadFile(p(pair[1]))
		if len(want) == 0 || !bytes.Equal(got, want) {
			t.Errorf("%s after two kills differs from the uninterrupted %s (%d vs %d bytes)", pair[0], pair[1], len(got), len(want))
		}
	}
}
