package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
