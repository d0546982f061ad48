package engine

import (
	"cmp"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/skuwatch/skuwatch/rules"
	"github.com/skuwatch/skuwatch/sources"
	"github.com/skuwatch/skuwatch/state"
)

// ProcessorConfig configures a Processor.
type ProcessorConfig struct {
	// Store is the partition's state. Required.
	Store *state.Store
	// Rules is the running ruleset. Required.
	Rules *Rules
	// CacheEntries bounds the in-memory ledger rows (the working set; the
	// rest stays in Pebble). A row costs roughly 1 KiB with its share of the
	// filters. The default is 500000.
	CacheEntries int
	// ExpectedEventIDs sizes the dedup filter before its first growth. The
	// default is 1<<20.
	ExpectedEventIDs uint
	// Metrics receives the engine's metrics. The default is unregistered ones.
	Metrics *Metrics
	// Logger is the default slog logger unless set.
	Logger *slog.Logger
	// BeforeCommit, if set, gets the encoding of every batch just before it
	// commits (a changelog for moving partitions); an error aborts the batch.
	BeforeCommit func(repr []byte) error
	// KeyClock evaluates an event at its own time (never before the key's
	// last evaluation) instead of the clock passed to Apply, which then only
	// drives timers. With an event-time clock this makes a key's outcomes
	// independent of how keys are spread over partitions and interleaved:
	// replay and a partitioned stream agree. The default is false (live).
	KeyClock bool
	// DedupRetention is how long (by the clock passed to FireTimers) an
	// applied event id is remembered: a redelivery of an event older than
	// that is applied again (unless it is from before its key's last count,
	// which is inside the count anyway). Ids are kept in UTC days of event
	// time, so the window is this rounded up to whole days. The default is
	// 7 days; negative keeps them forever.
	DedupRetention time.Duration
	// KPI also writes the KPI streams (state.StreamStock, state.StreamCounts)
	// to the outbox; only for a store whose sinks drain them, or their rows
	// would accumulate. The default is false.
	KPI bool
}

// Position is where a committed batch leaves the input: an opaque input
// offset and the event-time watermark.
type Position struct {
	Input     []byte
	Watermark int64
}

const (
	metaPosition  = "position"
	metaWatermark = "watermark"
	metaSeqPrefix = "seq/"
)

// Processor applies ledger records for one partition. Calls follow a batch
// cycle: Apply / DeadLetter / FireTimers any number of times, then Commit.
// A Processor is for one goroutine.
type Processor struct {
	cfg      ProcessorConfig
	store    *state.Store
	m        *Metrics
	log      *slog.Logger
	cache    *entryCache
	dedup    *dedup
	ledger   *keyFilter // every state key the store holds a row for
	batch    *state.Batch
	eval     rules.Evaluator
	env      rules.Env // of the evaluation running
	scratch  []byte
	keyBuf   []byte // dedup key of the current event
	stateKey []byte // state key of the current event

	seq       map[state.Stream]uint64
	nextTimer int64       // earliest known due timer, 0 for none
	fired     state.Timer // every timer sorting at or before this was handled
	firedDone state.Timer // fired as of the last commit
	pending   []state.Timer
	evals     uint64
	clock     int64  // the latest clock passed to FireTimers
	prunedTo  uint32 // applied ids of days before this are gone

	Counts Counts
}

// Counts are the processor's running totals since it was made.
type Counts struct {
	Processed, DeadLettered, Duplicates, Late int
	Opened, Updated, Resolved, TimersFired    int
}

// NewProcessor opens the processor over a store, restoring its sequences,
// dedup filter and timers.
func NewProcessor(cfg ProcessorConfig) (*Processor, error) {
	if cfg.Store == nil || cfg.Rules == nil {
		return nil, fmt.Errorf("engine: processor needs a store and rules")
	}
	if cfg.CacheEntries <= 0 {
		cfg.CacheEntries = 500_000
	}
	if cfg.DedupRetention == 0 {
		cfg.DedupRetention = 7 * 24 * time.Hour
	}
	if cfg.ExpectedEventIDs == 0 {
		cfg.ExpectedEventIDs = 1 << 20
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Processor{cfg: cfg, store: cfg.Store, m: cfg.Metrics, log: cfg.Logger,
		cache: newEntryCache(cfg.CacheEntries), seq: map[state.Stream]uint64{}}
	for _, s := range state.Streams {
		v, err := p.store.MetaUint(metaSeqPrefix + s.String())
		if err != nil {
			return nil, err
		}
		p.seq[s] = v
	}
	var err error
	if p.dedup, err = newDedup(p.store, cfg.ExpectedEventIDs); err != nil {
		return nil, err
	}
	if p.ledger, err = newKeyFilter(uint(cfg.CacheEntries), p.store.EachEntryKey); err != nil {
		return nil, err
	}
	if err := p.loadNextTimer(); err != nil {
		return nil, err
	}
	p.batch = p.store.NewBatch()
	return p, nil
}

// loadNextTimer finds the earliest timer not yet handled: committed after
// the fired cursor, or scheduled in this batch.
func (p *Processor) loadNextTimer() error {
	ts, err := p.store.DueTimers(p.fired, math.MaxInt64, 1)
	if err != nil {
		return fmt.Errorf("engine: read timers: %w", err)
	}
	p.nextTimer = 0
	if len(ts) > 0 {
		p.nextTimer = ts[0].Due
	}
	for _, t := range p.pending {
		if p.nextTimer == 0 || t.Due < p.nextTimer {
			p.nextTimer = t.Due
		}
	}
	return nil
}

// Position returns the position stored by the last committed batch.
func (p *Processor) Position() (Position, error) { return storedPosition(p.store) }

func storedPosition(s *state.Store) (Position, error) {
	in, _, err := s.Meta(metaPosition)
	if err != nil {
		return Position{}, err
	}
	wm, err := s.MetaUint(metaWatermark)
	return Position{Input: in, Watermark: int64(wm)}, err
}

// entry returns the cached ledger row of key, loading it from the store. The
// key bytes are copied only when the row enters the cache.
func (p *Processor) entry(key []byte) (*cacheItem, bool, error) {
	if it := p.cache.get(key); it != nil {
		return it, false, nil
	}
	var e *state.Entry
	ok := false
	if p.ledger.mayContain(key) {
		var err error
		if e, ok, err = p.store.Entry(string(key)); err != nil {
			return nil, false, err
		}
	}
	if !ok {
		e = &state.Entry{}
		p.ledger.add(key)
	}
	return p.cache.put(string(key), e), !ok, nil
}

// DeadLetter writes a rejected input to the dead-letter stream in this batch.
func (p *Processor) DeadLetter(dl state.DeadLetter) error {
	j, err := json.Marshal(dl)
	if err != nil {
		return fmt.Errorf("engine: encode dead letter: %w", err)
	}
	p.Counts.DeadLettered++
	p.m.deadLettered.Inc()
	return p.append(state.StreamDeadLetter, j)
}

func (p *Processor) append(s state.Stream, v []byte) error {
	p.seq[s]++
	return p.batch.Append(s, p.seq[s], v)
}

// Apply applies one validated ledger record at clock time now (unix ns):
// once per (source, event_id), then the rules for its type.
func (p *Processor) Apply(ev *sources.Event, now int64) error {
	kind := byte(0)
	if ev.Type == sources.TypeTransferExpected {
		kind = 1
	}
	p.keyBuf = state.AppendDedupKey(p.keyBuf[:0], ev.Source, ev.EventID, kind)
	seen, err := p.dedup.seen(p.keyBuf, ev.EventTime.UnixNano())
	if err != nil {
		return err
	}
	p.Counts.Processed++
	p.m.processed.Inc()
	if seen {
		p.Counts.Duplicates++
		p.m.duplicates.Inc()
		return nil
	}
	p.dedup.mark(p.keyBuf, ev.EventTime.UnixNano())
	p.stateKey = append(append(append(p.stateKey[:0], ev.SKU...), 0), ev.Location...)
	it, isNew, err := p.entry(p.stateKey)
	if err != nil {
		return err
	}
	key := it.key
	a := applyEvent(it.e, ev, isNew)
	if a.late {
		p.Counts.Late++
		p.m.late.Inc()
	}
	p.cache.markDirty(it)
	if p.cfg.KPI {
		if err := p.kpiRows(it.e, ev, a); err != nil {
			return err
		}
	}
	if p.cfg.KeyClock {
		now = max(ev.EventTime.UnixNano(), it.e.LastEval)
	}
	return p.evaluate(key, it.e, ev, a, now, ev.Type, ev.Source, ev.EventID, ev.EventTime.UnixNano())
}

// FireTimers evaluates the timer rules of every key whose wake time is at or
// before now, each at its own due time, in (due, key) order.
func (p *Processor) FireTimers(now int64) error {
	p.clock = max(p.clock, now)
	for p.nextTimer != 0 && p.nextTimer <= now {
		due, err := p.store.DueTimers(p.fired, now, timerPage)
		if err != nil {
			return err
		}
		cands := due
		rest := p.pending[:0]
		for _, t := range p.pending {
			if t.Due <= now {
				cands = append(cands, t)
			} else {
				rest = append(rest, t)
			}
		}
		p.pending = rest
		slices.SortFunc(cands, compareTimers)
		for i, t := range cands {
			if i > 0 && cands[i-1] == t {
				continue
			}
			if err := p.fire(t); err != nil {
				return err
			}
		}
		if len(due) == timerPage {
			p.fired = due[len(due)-1]
			continue
		}
		// Everything due by now is handled; "\xff" sorts after every key.
		p.fired = state.Timer{Due: now, StateKey: "\xff"}
		if err := p.loadNextTimer(); err != nil {
			return err
		}
	}
	return nil
}

const timerPage = 512

func compareTimers(a, b state.Timer) int {
	if a.Due != b.Due {
		return cmp.Compare(a.Due, b.Due)
	}
	return strings.Compare(a.StateKey, b.StateKey)
}

func (p *Processor) fire(t state.Timer) error {
	p.stateKey = append(p.stateKey[:0], t.StateKey...)
	it, isNew, err := p.entry(p.stateKey)
	if err != nil {
		return err
	}
	if isNew || it.e.WakeAt != t.Due {
		return nil // a stale index row: the key was rescheduled since
	}
	p.Counts.TimersFired++
	p.m.timersFired.Inc()
	it.e.WakeAt = 0
	if err := p.batch.DeleteTimer(t.Due, t.StateKey); err != nil {
		return err
	}
	p.cache.markDirty(it)
	return p.evaluate(t.StateKey, it.e, nil, applied{}, t.Due, triggerTimer, triggerTimer, fmt.Sprint(t.Due), t.Due)
}

// evaluate runs the rules for trigger on a key and applies the lifecycle.
func (p *Processor) evaluate(key string, e *state.Entry, ev *sources.Event, a applied, now int64,
	trigger, trigSource, trigID string, eventTime int64) error {
	rs := p.cfg.Rules.Current()
	e.LastEval = max(e.LastEval, now)
	th := rs.Thresholds(e.Category, time.Unix(0, now).UTC().Month())
	p.env = buildEnv(key, e, ev, a, now, th) // a field: one allocation per processor, not per evaluation
	env := &p.env
	lc := lifecycle{p: p, key: key, e: e, rs: rs, now: now, trigSource: trigSource, trigID: trigID, eventTime: eventTime, trigger: trigger}
	evaluated := rs.For(trigger)
	if ev != nil {
		evaluated = rs.ForEvent(trigger, a.late)
	}
	for _, r := range evaluated {
		idx := openIndex(e, r.ID)
		var start time.Time
		sample := p.evals&63 == 0
		p.evals++
		if sample {
			start = time.Now()
		}
		v, err := p.eval.Judge(r, env, idx >= 0)
		if sample {
			p.m.ruleEval.WithLabelValues(r.ID).Observe(time.Since(start).Seconds())
		}
		if err != nil {
			p.ruleError(r, err)
			continue
		}
		switch v {
		case rules.Fire:
			d, err := p.eval.Details(r, env)
			if err != nil {
				p.ruleError(r, err)
				continue
			}
			if err := lc.fire(r, idx, d); err != nil {
				return err
			}
		case rules.Cleared:
			if err := lc.resolve(idx, "condition cleared on "+trigger); err != nil {
				return err
			}
		}
	}
	if err := lc.dropRemovedRules(); err != nil {
		return err
	}
	return p.schedule(key, e, rs, evaluated, env, now)
}

func (p *Processor) ruleError(r *rules.Rule, err error) {
	p.m.ruleErrors.WithLabelValues(r.ID).Inc()
	p.log.Warn("rule evaluation failed; treated as not firing", "rule", r.ID, "err", err)
}

// schedule records the wake time each timer rule just evaluated asks for
// (rules not evaluated keep theirs) and sets the key's wake time to the
// earliest, rounded up to the minute so that an unchanged deadline keeps its
// index row.
func (p *Processor) schedule(key string, e *state.Entry, rs *rules.Ruleset, evaluated []*rules.Rule, env *rules.Env, now int64) error {
	for _, r := range evaluated {
		if !r.HasWake() {
			continue
		}
		h, ok, err := p.eval.WakeAfterHours(r, env)
		if err != nil {
			p.ruleError(r, err)
			continue
		}
		var at int64
		if ok {
			at = now + int64(h*float64(time.Hour))
			at = (at + int64(time.Minute) - 1) / int64(time.Minute) * int64(time.Minute)
			if at <= now {
				at = now + int64(time.Minute)
			}
		}
		setWake(e, r.ID, at)
	}
	var wake int64
	kept := e.Wakes[:0]
	for _, w := range e.Wakes {
		if r := rs.Rule(w.Rule); r == nil || !r.HasWake() {
			continue // the rule was removed or no longer asks for timers
		}
		kept = append(kept, w)
		if wake == 0 || w.At < wake {
			wake = w.At
		}
	}
	e.Wakes = kept
	if wake == e.WakeAt {
		return nil
	}
	if e.WakeAt != 0 {
		if err := p.batch.DeleteTimer(e.WakeAt, key); err != nil {
			return err
		}
	}
	e.WakeAt = wake
	if wake == 0 {
		return nil
	}
	p.pending = append(p.pending, state.Timer{Due: wake, StateKey: key})
	if p.nextTimer == 0 || wake < p.nextTimer {
		p.nextTimer = wake
	}
	return p.batch.SetTimer(wake, key)
}

// setWake sets one rule's wake time on the entry; 0 removes it.
func setWake(e *state.Entry, rule string, at int64) {
	for i := range e.Wakes {
		if e.Wakes[i].Rule == rule {
			if at == 0 {
				e.Wakes = append(e.Wakes[:i], e.Wakes[i+1:]...)
			} else {
				e.Wakes[i].At = at
			}
			return
		}
	}
	if at != 0 {
		e.Wakes = append(e.Wakes, state.RuleWake{Rule: rule, At: at})
	}
}

// RecordCursor writes a sink's cursor into the batch being built, so it
// travels with the batch (a changelog record) to another instance.
func (p *Processor) RecordCursor(sink string, seq uint64) error {
	return p.batch.SetCursor(sink, seq, nil)
}

// Commit writes the batch's ledger rows and pos with everything applied since
// the last commit, atomically, then starts the next batch.
func (p *Processor) Commit(pos Position, sync bool) error {
	start := time.Now()
	if err := p.dedup.write(p.batch); err != nil {
		return p.abort(err)
	}
	var err error
	if p.scratch, err = p.cache.flush(p.batch, p.scratch); err != nil {
		return p.abort(err)
	}
	for s, v := range p.seq {
		if err := p.batch.SetMetaUint(metaSeqPrefix+s.String(), v); err != nil {
			return p.abort(err)
		}
	}
	if err := p.batch.SetMeta(metaPosition, pos.Input); err != nil {
		return p.abort(err)
	}
	if err := p.batch.SetMetaUint(metaWatermark, uint64(pos.Watermark)); err != nil {
		return p.abort(err)
	}
	if p.cfg.BeforeCommit != nil {
		if err := p.cfg.BeforeCommit(p.batch.Repr()); err != nil {
			return p.abort(err)
		}
	}
	if err := p.batch.Commit(sync); err != nil {
		return p.abort(err)
	}
	p.batch = p.store.NewBatch()
	p.cache.committed()
	p.pending = p.pending[:0]
	p.firedDone = p.fired
	if err := p.dedup.committed(); err != nil {
		return err
	}
	if err := p.ledger.grow(); err != nil {
		return err
	}
	if p.cfg.DedupRetention > 0 && p.clock > 0 {
		// Once a day of the clock: the ids of events older than the window go.
		if day := state.AppliedDay(p.clock - int64(p.cfg.DedupRetention)); day > p.prunedTo {
			if err := p.dedup.prune(day); err != nil {
				return err
			}
			p.prunedTo = day
		}
	}
	p.m.batchSeconds.Observe(time.Since(start).Seconds())
	return nil
}

// abort drops the batch and every in-memory effect of it, so the processor
// can carry on from the last committed state.
func (p *Processor) abort(cause error) error {
	p.batch.Discard()
	p.batch = p.store.NewBatch()
	p.cache.discard()
	p.pending = p.pending[:0]
	p.fired = p.firedDone
	for s := range p.seq {
		v, err := p.store.MetaUint(metaSeqPrefix + s.String())
		if err == nil {
			p.seq[s] = v
		}
	}
	_ = p.loadNextTimer()
	_ = p.dedup.discard()
	return cause
}

// Close discards any uncommitted batch.
func (p *Processor) Close() {
	if p.batch != nil {
		p.batch.Discard()
		p.batch = nil
	}
}

// kpiRows writes what the KPI streams need to know of an applied event: a
// stock status change (first level, then every flip between in and out of
// stock) and the record of a count (again when a late movement corrects it).
func (p *Processor) kpiRows(e *state.Entry, ev *sources.Event, a applied) error {
	t := ev.EventTime.UnixNano()
	if out := e.OnHand <= 0; e.Baselined && (e.StockSeq == 0 || out != e.StockOut) {
		e.StockSeq, e.StockOut, e.StockAt = e.StockSeq+1, out, max(t, e.StockAt)
		j, err := json.Marshal(state.StockChange{SKU: ev.SKU, Location: ev.Location, Category: e.Category, Seq: int(e.StockSeq),
			At: time.Unix(0, e.StockAt).UTC(), OutOfStock: out, OnHand: e.OnHand})
		if err != nil {
			return fmt.Errorf("engine: encode stock change: %w", err)
		}
		if err := p.append(state.StreamStock, j); err != nil {
			return err
		}
	}
	switch {
	case ev.Type == sources.TypeCount && !a.late && a.baselined:
		e.CountVersion, e.CountSource = 1, ev.Source
	case a.countCorrected && e.CountVersion > 0:
		e.CountVersion++
	default:
		return nil
	}
	j, err := json.Marshal(state.CountRecord{SKU: ev.SKU, Location: ev.Location, Category: e.Category,
		CountedAt: time.Unix(0, e.LastCount).UTC(), Source: e.CountSource, Counted: e.LastCountQty,
		System: e.CountLedgerBefore, Variance: e.CountVariance, UnitCost: e.UnitCost, Version: int(e.CountVersion)})
	if err != nil {
		return fmt.Errorf("engine: encode count record: %w", err)
	}
	return p.append(state.StreamCounts, j)
}
