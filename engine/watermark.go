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
	parts   inputs[rawPartition]
}

// progress is one input's latest event time and when it last sent.
type progress struct {
	hi   int64     // latest event time
	seen time.Time // wall time of the last record
}

// inputs is the progress of each input of a watermark, in a slice: the
// least of them is taken for every record.
type inputs[K comparable] struct {
	index map[K]int
	list  []progress
}

// note records event time t of input k, seen at now.
func (in *inputs[K]) note(k K, t int64, now time.Time) {
	i, ok := in.index[k]
	if !ok {
		if in.index == nil {
			in.index = map[K]int{}
		}
		i = len(in.list)
		in.index[k] = i
		in.list = append(in.list, progress{})
	}
	p := &in.list[i]
	p.hi, p.seen = max(p.hi, t), now
}

func (in *inputs[K]) has(k K) bool {
	_, ok := in.index[k]
	return ok
}

// lowest is the least latest event time of the inputs not idle at now; with
// every input idle it is the latest of them: everything sent is in.
func (in *inputs[K]) lowest(now time.Time) int64 {
	low, latest := int64(math.MaxInt64), int64(0)
	for i := range in.list {
		p := &in.list[i]
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
	return &intakeWatermark{started: now, known: known}
}

// observe notes a record of p at event time t (unix ns), read at now.
func (w *intakeWatermark) observe(p rawPartition, t int64, now time.Time) { w.parts.note(p, t, now) }

// low is lowest over the raw partitions; 0 while a known partition has not
// been read yet (for the first watermarkIdle after start: another instance
// may read it).
func (w *intakeWatermark) low(now time.Time) int64 {
	if now.Sub(w.started) < watermarkIdle {
		for _, p := range w.known {
			if !w.parts.has(p) {
				return 0
			}
		}
	}
	return w.parts.lowest(now)
}

// ledgerWatermark is a ledger partition's event-time clock from the stamps of
// the intakes writing to it. Not safe for concurrent use.
type ledgerWatermark struct {
	clock *EventClock
	srcs  inputs[intakeID] // by intake instance
}

func newLedgerWatermark(clock *EventClock) *ledgerWatermark {
	return &ledgerWatermark{clock: clock}
}

// observe advances the clock with one ledger record read at now. A record
// without a stamp (another producer) counts as one more source, timed by
// its event time.
func (w *ledgerWatermark) observe(st stamp, eventTime int64, now time.Time) {
	wm := eventTime
	if st.ok {
		wm = st.watermark
	}
	w.srcs.note(st.intake, wm, now)
	if low := w.srcs.lowest(now); low > 0 {
		w.clock.Observe(time.Unix(0, low))
	}
}
