package engine

import (
	"testing"
	"time"
)

func TestIntakeWatermark(t *testing.T) {
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	a, b := rawPartition{"raw", 0}, rawPartition{"raw", 1}
	w := newIntakeWatermark([]rawPartition{a, b}, start)
	w.observe(a, 100, start)
	if got := w.low(start); got != 0 {
		t.Errorf("partition 1 not read yet: low %d, want 0", got)
	}
	w.observe(b, 40, start)
	w.observe(a, 200, start)
	if got := w.low(start); got != 40 {
		t.Errorf("a at 200, b at 40 (a backlog drained faster on a): low %d, want 40", got)
	}
	// b goes quiet for longer than the idleness: a alone counts.
	later := start.Add(watermarkIdle + time.Second)
	w.observe(a, 300, later)
	if got := w.low(later); got != 300 {
		t.Errorf("b idle: low %d, want 300", got)
	}
	// Everything idle: all that was sent is in.
	if got := w.low(later.Add(watermarkIdle * 2)); got != 300 {
		t.Errorf("all idle: low %d, want the latest, 300", got)
	}
	// A partition another instance reads does not block forever.
	w2 := newIntakeWatermark([]rawPartition{a, b}, start)
	w2.observe(a, 100, later)
	if got := w2.low(later); got != 100 {
		t.Errorf("b never read (another member's): low %d, want 100 after the idleness", got)
	}
}

func TestLedgerWatermark(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	clock := NewEventClock(0)
	w := newLedgerWatermark(clock)
	from := func(src string, wm int64) stamp {
		st := stamp{watermark: wm, ok: true}
		copy(st.intake[:], src)
		return st
	}
	w.observe(from("i1", 50), 400, now)
	if got := clock.Watermark(); got != 50 {
		t.Errorf("stamped 50 on an event of 400: clock %d, want 50", got)
	}
	w.observe(from("i2", 30), 500, now)
	w.observe(from("i1", 90), 600, now)
	if got := clock.Watermark(); got != 50 {
		t.Errorf("i1 at 90, i2 at 30: clock %d, want 50 (it never goes back)", got)
	}
	w.observe(from("i2", 80), 600, now)
	if got := clock.Watermark(); got != 80 {
		t.Errorf("i1 at 90, i2 at 80: clock %d, want 80", got)
	}
	// i2 leaves the group: after the idleness i1 alone counts.
	w.observe(from("i1", 120), 700, now.Add(watermarkIdle+time.Second))
	if got := clock.Watermark(); got != 120 {
		t.Errorf("i2 gone: clock %d, want 120", got)
	}
	// A record from another producer, without a stamp, counts by its event time.
	c2 := NewEventClock(0)
	w2 := newLedgerWatermark(c2)
	w2.observe(stamp{}, 777, now)
	if got := c2.Watermark(); got != 777 {
		t.Errorf("unstamped record at 777: clock %d", got)
	}
}
