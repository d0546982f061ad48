package engine

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/skuwatch/skuwatch/state"
)

// TestDedupRetention: a redelivery within the retention window is applied
// once; one of an event older than the window is applied again.
func TestDedupRetention(t *testing.T) {
	lines := []string{
		`{"event_id":"s1","source":"pos","type":"sale","sku":"S","location":"L","qty":1,"event_time":"2026-06-01T09:00:00Z"}`,
		`{"event_id":"s2","source":"pos","type":"sale","sku":"S","location":"L","qty":1,"event_time":"2026-06-03T09:00:00Z"}`,
		`{"event_id":"s1","source":"pos","type":"sale","sku":"S","location":"L","qty":1,"event_time":"2026-06-01T09:00:00Z"}`,
		`{"event_id":"s3","source":"pos","type":"sale","sku":"S","location":"L","qty":1,"event_time":"2026-06-20T09:00:00Z"}`,
		`{"event_id":"s2","source":"pos","type":"sale","sku":"S","location":"L","qty":1,"event_time":"2026-06-03T09:00:00Z"}`,
	}
	events := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(events, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := replay(t, newFiles(t, events), 1)
	if s.Processed != 5 || s.Duplicates != 1 {
		t.Errorf("processed %d, duplicates %d; want 5 and 1 (s1 within 7 days; s2 after 17)", s.Processed, s.Duplicates)
	}
}

// TestDedupBatch: an id marked in the open batch is seen before the batch
// commits, is in the store after it, and is forgotten with a discarded
// batch.
func TestDedupBatch(t *testing.T) {
	st, err := state.Open(filepath.Join(t.TempDir(), "db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d, err := newDedup(st, 1000)
	if err != nil {
		t.Fatal(err)
	}
	const at = int64(1_780_000_000_000_000_000)
	key := func(id string) []byte { return state.AppendDedupKey(nil, "pos", id, 0) }
	seen := func(id string) bool {
		ok, err := d.seen(key(id), at)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for i := range 300 {
		d.mark(key("e"+strconv.Itoa(i)), at)
	}
	if !seen("e0") || !seen("e299") || seen("e300") {
		t.Fatal("marks of the open batch: e0, e299 seen, e300 not")
	}
	b := st.NewBatch()
	if err := d.write(b); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if err := d.committed(); err != nil {
		t.Fatal(err)
	}
	if !seen("e150") || seen("e300") {
		t.Error("after the commit: e150 seen from the store, e300 not")
	}
	d.mark(key("lost"), at)
	if err := d.discard(); err != nil {
		t.Fatal(err)
	}
	if seen("lost") || !seen("e7") {
		t.Error("after a discard: the discarded mark is gone, committed ones stay")
	}
}
