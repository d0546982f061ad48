package sinks

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/skuwatch/skuwatch/state"
)

func fill(t *testing.T, s *state.Store, from, to uint64) {
	t.Helper()
	b := s.NewBatch()
	for i := from; i <= to; i++ {
		if err := b.Append(state.StreamExceptions, i, []byte(`{"n":`+string(rune('0'+i))+`}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
}

// TestJSONLResumesFromCheckpoint: lines written after the last stored
// cursor (a crash between write and cursor) are cut off and written once.
func TestJSONLResumesFromCheckpoint(t *testing.T) {
	dir := t.TempDir()
	st, err := state.Open(filepath.Join(dir, "db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := filepath.Join(dir, "out.jsonl")
	fill(t, st, 1, 3)
	sink := NewJSONL("j", out, state.StreamExceptions, true)
	d, _ := NewDrainer(st, sink, WithBatchSize(2))
	if n, err := d.Drain(context.Background()); err != nil || n != 3 {
		t.Fatalf("drain: %d %v", n, err)
	}
	sink.Close()
	// A crash after writing rows 4–5 but before their cursor was stored.
	f, _ := os.OpenFile(out, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("{\"n\":4}\n{\"n\":5}\n")
	f.Close()
	fill(t, st, 4, 5)
	sink2 := NewJSONL("j", out, state.StreamExceptions, true)
	d2, _ := NewDrainer(st, sink2)
	if n, err := d2.Drain(context.Background()); err != nil || n != 2 {
		t.Fatalf("second drain: %d %v", n, err)
	}
	sink2.Close()
	got, _ := os.ReadFile(out)
	if want := "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n{\"n\":5}\n"; string(got) != want {
		t.Errorf("file:\n%s\nwant:\n%s", got, want)
	}
	// A file shorter than what was delivered was changed by someone else.
	os.WriteFile(out, []byte("x\n"), 0o644)
	sink3 := NewJSONL("j", out, state.StreamExceptions, true)
	d3, _ := NewDrainer(st, sink3)
	if _, err := d3.Drain(context.Background()); err == nil {
		t.Error("a truncated output file was accepted")
	}
}

type failing struct {
	*JSONL
	fails int
}

func (f *failing) Write(ctx context.Context, rows []state.Row) ([]byte, error) {
	if f.fails > 0 {
		f.fails--
		return nil, errors.New("sink down")
	}
	return f.JSONL.Write(ctx, rows)
}

// TestDrainerRetryReopens: after a failed write the drainer reopens the sink
// from its checkpoint and delivers everything once.
func TestDrainerRetryReopens(t *testing.T) {
	dir := t.TempDir()
	st, err := state.Open(filepath.Join(dir, "db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fill(t, st, 1, 4)
	out := filepath.Join(dir, "out.jsonl")
	s := &failing{JSONL: NewJSONL("j", out, state.StreamExceptions, false), fails: 1}
	d, _ := NewDrainer(st, s)
	if _, err := d.Drain(context.Background()); err == nil {
		t.Fatal("first drain should fail")
	}
	if n, err := d.Drain(context.Background()); err != nil || n != 4 {
		t.Fatalf("retry: %d %v", n, err)
	}
	s.Close()
	if got, _ := os.ReadFile(out); len(got) != 4*8 {
		t.Errorf("file after retry: %q", got)
	}
	if d.Cursor() != 4 {
		t.Errorf("cursor %d", d.Cursor())
	}
}
