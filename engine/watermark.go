package engine

import (
	"math"
	"time"
)

// Event-time watermarks across partitions. The intake reads several raw
// partitions and each ledger partition mixes what they send, so "the latest
// event time a ledger partition has seen" runs ahead of a raw partition that
// is behind (a backlog drained faster on one partition than another), and
// timers would fire before events that happened earlier arrive. Instead the
// intake stamps every ledger record with its low watermark — the least of
// the latest event times of the raw partitions it reads — and a ledger
// partition's clock is the least of its intakes' stamps. The cost: a raw
// partition that is quiet in event time (no sales overnight on its keys)
// holds timers back until its next record. With one raw partition the
// watermark is replay's: the latest event time read.

// watermarkIdle is how long a source without records stops holding a
// watermark back (Flink's "idleness"): a raw partition nobody writes to, an
// intake instance that left the group.
const watermarkIdle = 5 * time.Second

type rawPartition struct {
	topic     string
	partition int
}

// intakeWatermark is an intake instance's low watermark over the raw
// partitions it reads. Not safe for concurrent use.
type intakeWatermark struct {
	started time.Time
	known   []rawPartition // every raw partition (from metadata), or nil
	parts   map[rawPartition]*progress
}

// progress is one input's latest event time and when it last sent.
type progress struct {
	hi   int64     // latest event time
	seen time.Time // wall time of the last record
}

// note records event time t of an input k, seen at now.
func note[K comparable](m map[K]*progress, k K, t int64, now time.Time) {
	p := m[k]
	if p == nil {
		p = &progress{}
		m[k] = p
	}
	p.hi, p.seen = max(p.hi, t), now
}

// lowest is the least latest event time of the inputs not idle at now; with
// every input idle it is the latest of them: everything sent is in.
func lowest[K comparable](m map[K]*progress, now time.Time) int64 {
	low, latest := int64(math.MaxInt64), int64(0)
	for _, p := range m {
		latest = max(latest, p.hi)
		if now.Sub(p.seen) < watermarkIdle {
			low = min(low, p.hi)
		}
	}
	if low == math.MaxInt64 {
		return latest
	}
	return low
}

func newIntakeWatermark(known []rawPartition, now time.Time) *intakeWatermark {
	return &intakeWatermark{started: now, known: known, parts: map[rawPartition]*progress{}}
}

// observe notes a record of p at event time t (unix ns), read at now.
func (w *intakeWatermark) observe(p rawPartition, t int64, now time.Time) { note(w.parts, p, t, now) }

// low is lowest over the raw partitions; 0 while a known partition has not
// been read yet (for the first watermarkIdle after start: another instance
// may read it).
func (w *intakeWatermark) low(now time.Time) int64 {
	for _, p := range w.known {
		if _, ok := w.parts[p]; !ok && now.Sub(w.started) < watermarkIdle {
			return 0
		}
	}
	return lowest(w.parts, now)
}

// ledgerWatermark is a ledger partition's event-time clock from the stamps of
// the intakes writing to it. Not safe for concurrent use.
type ledgerWatermark struct {
	clock *EventClock
	srcs  map[intakeID]*progress // by intake instance
}

func newLedgerWatermark(clock *EventClock) *ledgerWatermark {
	return &ledgerWatermark{clock: clock, srcs: map[intakeID]*progress{}}
}

// observe advances the clock with one ledger record read at now. A record
// without a stamp (another producer) counts as one more source, timed by
// its event time.
func (w *ledgerWatermark) observe(st stamp, eventTime int64, now time.Time) {
	wm := eventTime
	if st.ok {
		wm = st.watermark
	}
	note(w.srcs, st.intake, wm, now)
	if low := lowest(w.srcs, now); low > 0 {
		w.clock.Observe(time.Unix(0, low))
	}
}
