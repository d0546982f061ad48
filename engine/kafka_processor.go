package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/skuwatch/skuwatch/sinks"
	"github.com/skuwatch/skuwatch/state"
)

// Clock modes of the processor stage.
const (
	ClockWall  = "wall"  // live: wall time; timers fire on the clock
	ClockEvent = "event" // per-partition watermark, as in replay
)

// ProcessorStageConfig configures the processor stage.
type ProcessorStageConfig struct {
	Brokers     []string // required
	LedgerTopic string   // required
	// GroupID is the processor consumer group. The default is
	// "skuwatch-processor".
	GroupID string
	// DataDir holds one state store per partition (LedgerTopic-N). Required.
	DataDir string
	Rules   *Rules // required
	// Sinks makes the sinks that drain one partition's outbox; each gets
	// its own cursor in that partition's store. Required.
	Sinks func(partition int) ([]sinks.Sink, error)
	// ChangelogTopic, if set, makes a partition's state follow it between
	// instances: every batch is written there (to the partition of the same
	// number, before the batch commits) and an assigned partition first
	// applies the records its local store lacks. The topic needs at least
	// the ledger's partitions and a message size limit above the largest
	// batch. The default is none: state stays with the instance.
	ChangelogTopic string
	// Clock is ClockWall (the default) or ClockEvent.
	Clock string
	// Intake validates the ledger records another producer wrote in
	// canonical JSON; give it the intake stage's sources. The intake stage's
	// own records are not validated twice.
	Intake IntakeConfig

	// BatchSize bounds the records of one Pebble batch. The default is 1000.
	BatchSize int
	// BatchWindow is how long a partition gathers records into one batch
	// after its previous commit: the longest an exception waits for its
	// batch to sync. The default is 10ms.
	BatchWindow time.Duration
	// Tick is how often an idle partition checks its timers. The default is
	// 1s.
	Tick time.Duration
	// MaxBacklog pauses a partition while its slowest sink has more than this
	// many undelivered rows, so a slow sink cannot grow the outbox without
	// bound. The default is 100000.
	MaxBacklog uint64
	// CacheEntries per partition, as ProcessorConfig. The default is
	// ProcessorConfig's.
	CacheEntries int
	// DedupRetention, as ProcessorConfig. The default is ProcessorConfig's.
	DedupRetention time.Duration
	// SnapshotBytes: after this many bytes of changelog records since the
	// last snapshot, a partition writes its whole state to the changelog, and
	// a restore starts from the latest complete snapshot instead of the
	// beginning — so the changelog may then expire records older than a
	// few snapshot intervals. The default is 256 MiB; negative, never.
	SnapshotBytes int64
	// CommitInterval is how often a partition syncs its store (the batches
	// in between are written, not synced) and the group offsets — copies of
	// the synced offsets in the stores — are committed, all partitions in
	// one request. The default is 500ms.
	CommitInterval time.Duration
	Dialer         *kafka.Dialer
	Transport      *kafka.Transport // for the changelog writer; the default is kafka-go's
	SessionTimeout time.Duration    // of the consumer group; the default is kafka-go's
	Metrics        *Metrics
	Logger         *slog.Logger
}

// ProcessorStage consumes the ledger topic in a consumer group: one goroutine
// per assigned partition, each with its own store, processor and sinks. A
// partition's batch — state, timers, outbox and the next offset — is one
// atomic write to its store; the store is synced every CommitInterval and
// at a stop, and only a synced offset goes to the group. An assigned
// partition resumes from the offset in its store.
type ProcessorStage struct {
	cfg      ProcessorStageConfig
	ready    atomic.Bool
	assigned atomic.Int32
	mu       sync.Mutex // guards counts
	// counts are totals over partitions since Run started.
	counts Counts
}

// NewProcessorStage checks the configuration.
func NewProcessorStage(cfg ProcessorStageConfig) (*ProcessorStage, error) {
	if len(cfg.Brokers) == 0 || cfg.LedgerTopic == "" || cfg.DataDir == "" || cfg.Rules == nil || cfg.Sinks == nil {
		return nil, errors.New("engine: processor stage needs brokers, a ledger topic, a data dir, rules and sinks")
	}
	if cfg.GroupID == "" {
		cfg.GroupID = "skuwatch-processor"
	}
	switch cfg.Clock {
	case "":
		cfg.Clock = ClockWall
	case ClockWall, ClockEvent:
	default:
		return nil, fmt.Errorf("engine: clock %q: want %s or %s", cfg.Clock, ClockWall, ClockEvent)
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	if cfg.BatchWindow <= 0 {
		cfg.BatchWindow = 10 * time.Millisecond
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.SnapshotBytes == 0 {
		cfg.SnapshotBytes = 256 << 20
	}
	if cfg.CommitInterval <= 0 {
		cfg.CommitInterval = 500 * time.Millisecond
	}
	if cfg.MaxBacklog == 0 {
		cfg.MaxBacklog = 100_000
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &ProcessorStage{cfg: cfg}, nil
}

// Counts returns the totals so far.
func (s *ProcessorStage) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts
}

// Run joins the group and processes its partitions until ctx ends. It
// returns only after every partition goroutine has stopped and closed its
// store, so another stage may take the partitions over at once.
func (s *ProcessorStage) Run(ctx context.Context) error {
	if s.cfg.ChangelogTopic != "" {
		if err := s.checkChangelog(ctx); err != nil {
			if ctx.Err() != nil {
				return nil // stopped before it began: not an error
			}
			return err
		}
	}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{ID: s.cfg.GroupID, Brokers: s.cfg.Brokers,
		Topics: []string{s.cfg.LedgerTopic}, Dialer: s.cfg.Dialer, SessionTimeout: s.cfg.SessionTimeout,
		HeartbeatInterval: heartbeat(s.cfg.SessionTimeout), StartOffset: kafka.FirstOffset})
	if err != nil {
		return fmt.Errorf("engine: processor group: %w", err)
	}
	var running sync.WaitGroup
	defer func() {
		group.Close() // ends the generation: its partition contexts are canceled
		running.Wait()
	}()
	var errMu sync.Mutex
	var firstErr error
	for {
		gen, err := group.Next(ctx)
		if ctx.Err() != nil {
			errMu.Lock()
			defer errMu.Unlock()
			return firstErr
		}
		if err != nil {
			// A rebalance the member lost (unknown member, generation gone)
			// is normal group life: join again.
			s.cfg.Logger.Warn("consumer group: joining again", "err", err)
			sleepCtx(ctx, 200*time.Millisecond)
			continue
		}
		s.ready.Store(true)
		offsets := newOffsetCommitter("the stores have the offsets")
		var parts sync.WaitGroup
		for _, a := range gen.Assignments[s.cfg.LedgerTopic] {
			a := a
			running.Add(1)
			parts.Add(1)
			gen.Start(func(gctx context.Context) {
				defer running.Done()
				defer parts.Done()
				if err := s.runPartition(gctx, a, offsets); err != nil {
					s.cfg.Logger.Error("partition stopped", "partition", a.ID, "err", err)
					errMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					errMu.Unlock()
				}
			})
		}
		gen.Start(func(gctx context.Context) {
			offsets.run(gctx, gen, &parts, s.cfg.CommitInterval, s.cfg.Logger)
		})
	}
}

// checkChangelog refuses a changelog topic with fewer partitions than the
// ledger: partition N's state goes to changelog partition N.
func (s *ProcessorStage) checkChangelog(ctx context.Context) error {
	d := s.cfg.Dialer
	if d == nil {
		d = kafka.DefaultDialer
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", s.cfg.Brokers[0])
	if err != nil {
		return fmt.Errorf("engine: changelog check: %w", err)
	}
	defer conn.Close()
	count := func(topic string) (int, error) {
		ps, err := conn.ReadPartitions(topic)
		if err != nil {
			return 0, fmt.Errorf("engine: topic %s: %w", topic, err)
		}
		return len(ps), nil
	}
	ledger, err := count(s.cfg.LedgerTopic)
	if err != nil {
		return err
	}
	changelog, err := count(s.cfg.ChangelogTopic)
	if err != nil {
		return fmt.Errorf("%w (create the changelog topic with %d partitions; see the README)", err, ledger)
	}
	if changelog < ledger {
		return fmt.Errorf("engine: changelog topic %s has %d partitions, the ledger %s %d: it needs at least as many", s.cfg.ChangelogTopic, changelog, s.cfg.LedgerTopic, ledger)
	}
	return nil
}

// partitionOffset is the stored input position: the next offset to read.
func partitionOffset(pos Position) (int64, bool) {
	if len(pos.Input) != 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(pos.Input)), true
}

func (s *ProcessorStage) runPartition(ctx context.Context, a kafka.PartitionAssignment, offsets *offsetCommitter) error {
	s.assigned.Add(1)
	defer s.assigned.Add(-1)
	topic := s.cfg.LedgerTopic
	store, err := state.Open(filepath.Join(s.cfg.DataDir, fmt.Sprintf("%s-%d", topic, a.ID)), state.Options{Logger: s.cfg.Logger})
	if err != nil {
		return err
	}
	defer store.Close()
	var beforeCommit func([]byte) error
	var pendingNext int64   // the ledger offset the batch being committed ends at
	var sinceSnapshot int64 // changelog bytes written since the last snapshot
	var snapshot func(at int64, cursors []sinks.Cursor) error
	var cursorsOnly bool // the batch being committed holds only sink cursors
	if s.cfg.ChangelogTopic != "" {
		n, err := s.restore(ctx, store, a.ID)
		if err != nil {
			return err
		}
		if n > 0 {
			s.cfg.Logger.Info("partition state restored from the changelog", "partition", a.ID, "batches", n)
		}
		tr := s.cfg.Transport
		if tr == nil {
			tr = &kafka.Transport{}
			defer tr.CloseIdleConnections()
		}
		cl := &kafka.Writer{Addr: kafka.TCP(s.cfg.Brokers...), Topic: s.cfg.ChangelogTopic, RequiredAcks: kafka.RequireAll,
			Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return a.ID }), BatchSize: 1,
			BatchBytes: 64 << 20, Compression: kafka.Zstd, Transport: tr}
		defer cl.Close()
		beforeCommit = func(repr []byte) error {
			// Not the partition's context: a batch that is being committed at
			// shutdown is finished, not abandoned.
			wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			h := []kafka.Header{{Key: "ledger_offset", Value: []byte(strconv.FormatInt(pendingNext, 10))}}
			if cursorsOnly {
				h = append(h, kafka.Header{Key: "cursors_only", Value: []byte("1")})
			}
			if err := cl.WriteMessages(wctx, kafka.Message{Value: repr, Headers: h}); err != nil {
				return err
			}
			sinceSnapshot += int64(len(repr))
			return nil
		}
		snapshot = func(at int64, cursors []sinks.Cursor) error {
			// The whole store at ledger offset at, in chunks, then an end
			// record naming how many chunks precede it: a restore that finds
			// the end applies the snapshot instead of the history before it.
			wctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			off := []byte(strconv.FormatInt(at, 10))
			n := 0
			chunk := func(repr []byte) error {
				n++
				return cl.WriteMessages(wctx, kafka.Message{Value: repr, Headers: []kafka.Header{
					{Key: "ledger_offset", Value: off}, {Key: headerSnapshotChunk, Value: []byte(strconv.Itoa(n))}}})
			}
			err := store.Snapshot(4<<20, chunk)
			if err == nil && len(cursors) > 0 {
				// The shared sinks' cursors, which move with the state.
				b := store.NewBatch()
				for _, c := range cursors {
					b.SetCursor(c.Sink, c.Seq, nil)
				}
				err = chunk(b.Repr())
				b.Discard()
			}
			if err != nil {
				return fmt.Errorf("engine: changelog snapshot of %s/%d: %w", topic, a.ID, err)
			}
			if err := cl.WriteMessages(wctx, kafka.Message{Headers: []kafka.Header{
				{Key: "ledger_offset", Value: off}, {Key: headerSnapshotEnd, Value: []byte(strconv.Itoa(n))}}}); err != nil {
				return fmt.Errorf("engine: changelog snapshot of %s/%d: %w", topic, a.ID, err)
			}
			s.cfg.Logger.Info("partition state snapshot written to the changelog", "partition", a.ID, "chunks", n, "ledger_offset", at)
			sinceSnapshot = 0
			return nil
		}
	}
	// Sinks drain this partition's outbox in their own goroutines.
	outs, err := s.cfg.Sinks(a.ID)
	if err != nil {
		return err
	}
	defer func() { // after the final delivery below
		for _, o := range outs {
			o.Close()
		}
	}()
	proc, err := NewProcessor(ProcessorConfig{Store: store, Rules: s.cfg.Rules, CacheEntries: s.cfg.CacheEntries, DedupRetention: s.cfg.DedupRetention,
		Metrics: s.cfg.Metrics, Logger: s.cfg.Logger, KeyClock: s.cfg.Clock == ClockEvent, BeforeCommit: beforeCommit,
		KPI: drainsKPI(outs)})
	if err != nil {
		return err
	}
	defer proc.Close()
	pos, err := proc.Position()
	if err != nil {
		return err
	}
	next, ok := partitionOffset(pos)
	if !ok {
		next = a.Offset
		if next < 0 {
			next = kafka.FirstOffset
		}
	}

	var lastPos Position // of this assignment's last commit
	var stopped bool     // the loop ended with everything applied committed
	// Cursors of sinks whose destination is shared go into the batch, so
	// the changelog carries them and a new owner of the partition resumes
	// delivery near where this one was, not from the start. (0: the drainer
	// has not read its stored cursor yet.)
	var drainers []*sinks.Drainer
	movable := func() []sinks.Cursor {
		var out []sinks.Cursor
		for _, d := range drainers {
			if c := d.Cursor(); c > 0 && sinks.IsMovable(d.Sink()) {
				out = append(out, sinks.Cursor{Sink: d.Sink().Name(), Seq: c})
			}
		}
		return out
	}
	recordCursors := func() error {
		for _, c := range movable() {
			if err := proc.RecordCursor(c.Sink, c.Seq); err != nil {
				return err
			}
		}
		return nil
	}
	sinkCtx, stopSinks := context.WithCancel(context.Background())
	var sinkWG sync.WaitGroup
	notify := make([]chan struct{}, len(outs))
	for i, out := range outs {
		d, err := sinks.NewDrainer(store, out, sinks.WithLogger(s.cfg.Logger))
		if err != nil {
			stopSinks()
			return err
		}
		drainers = append(drainers, d)
		notify[i] = make(chan struct{}, 1)
		sinkWG.Add(1)
		go func(d *sinks.Drainer, ch chan struct{}) {
			defer sinkWG.Done()
			if err := d.Run(sinkCtx, ch, 200*time.Millisecond); err != nil {
				s.cfg.Logger.Error("sink stopped", "sink", d.Sink().Name(), "partition", a.ID, "err", err)
			}
		}(d, notify[i])
	}
	defer func() {
		stopSinks()
		sinkWG.Wait()
		// A last delivery of what this partition committed, so a clean stop
		// leaves nothing behind in the outbox (best effort: the next owner
		// of the partition delivers the rest).
		final, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, d := range drainers {
			if _, err := d.Drain(final); err != nil {
				s.cfg.Logger.Warn("final sink delivery incomplete", "sink", d.Sink().Name(), "partition", a.ID, "err", err)
			}
		}
		// And one more batch, of nothing but the shared sinks' cursors, so
		// the next owner resumes exactly after this delivery.
		if stopped && lastPos.Input != nil && recordCursors() == nil {
			pendingNext, cursorsOnly = next, true
			if err := proc.Commit(lastPos, true); err != nil {
				s.cfg.Logger.Warn("final cursor batch not written; the next owner delivers the last rows again", "partition", a.ID, "err", err)
			}
		}
	}()
	kick := func() {
		for _, ch := range notify {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}

	r := newLedgerReader(ctx, s.cfg.Dialer, s.cfg.Brokers, topic, a.ID, next, s.cfg.Logger)
	defer r.close()
	var clock Clock = WallClock{}
	var events *EventClock
	var marks *ledgerWatermark
	if s.cfg.Clock == ClockEvent {
		events = NewEventClock(pos.Watermark)
		clock, marks = events, newLedgerWatermark(events)
	}
	intake := NewIntake(s.cfg.Intake)
	before := proc.Counts
	partLabel := strconv.Itoa(a.ID)
	s.cfg.Logger.Info("partition assigned", "partition", a.ID, "offset", next)
	// A batch — one synced commit — gathers what arrives within BatchWindow
	// of the previous commit (or BatchSize records): records are applied as
	// they arrive, and only the commit waits, so a busy partition syncs a
	// few large batches instead of many small ones.
	pending := 0 // records applied since the last commit
	lastCommit := time.Now()
	var lastPrune time.Time
	// Batches are written without a sync, and the store syncs at most every
	// CommitInterval (a synced batch syncs every batch before it): a crash
	// of the machine loses at most that much of the store, which the
	// ledger topic has, from the offset the store still holds. Only synced
	// offsets are committed to the group.
	lastSync, unsynced := time.Now(), false
	commit := func(sync bool) error {
		var wm int64
		if events != nil {
			wm = events.Watermark()
		}
		pendingNext = next
		if err := recordCursors(); err != nil {
			return err
		}
		pos := Position{Input: binary.BigEndian.AppendUint64(nil, uint64(next)), Watermark: wm}
		if err := proc.Commit(pos, sync); err != nil {
			return err
		}
		lastPos, unsynced = pos, !sync
		if snapshot != nil && s.cfg.SnapshotBytes > 0 && sinceSnapshot >= s.cfg.SnapshotBytes {
			if err := snapshot(next, movable()); err != nil {
				return err
			}
		}
		pending, lastCommit = 0, time.Now()
		if lastCommit.Sub(lastPrune) >= time.Second {
			// Rows every sink of their stream delivered go (locally: a
			// partition restored elsewhere gets the changelog's rows and
			// prunes by its own drainers' cursors).
			if err := pruneOutbox(store, drainers); err != nil {
				return err
			}
			lastPrune = lastCommit
		}
		kick()
		s.cfg.Metrics.lag.WithLabelValues(partLabel).Set(float64(r.lag()))
		if sync {
			lastSync = lastCommit
			offsets.set(topic, a.ID, next) // the group offset is a copy, committed off the hot path
		}
		s.add(proc.Counts, &before)
		return nil
	}
	for {
		wait := s.cfg.Tick
		if pending == 0 {
			if err := s.waitForSinks(ctx, partLabel, store, drainers); err != nil {
				if unsynced {
					if err := commit(true); err != nil {
						return err
					}
				}
				stopped = true
				return nil // the generation ended
			}
		} else {
			wait = max(time.Until(lastCommit.Add(s.cfg.BatchWindow)), time.Millisecond)
		}
		batch, err := r.take(ctx, wait, s.cfg.BatchSize-pending)
		if err != nil {
			// A stop: what was applied is committed, not abandoned, and
			// synced.
			if pending > 0 || unsynced {
				if err := commit(true); err != nil {
					return err
				}
			}
			stopped = true
			return nil
		}
		wall := time.Now()
		for _, m := range batch {
			ev, st, rej := intake.acceptLedger(m.value, clock.Now())
			if rej != nil {
				if err := proc.DeadLetter(NewDeadLetter(rej, topic, m.offset, m.value)); err != nil {
					return err
				}
				continue
			}
			if marks != nil {
				marks.observe(st, ev.EventTime.UnixNano(), wall)
			}
			now := clock.Now().UnixNano()
			if err := proc.FireTimers(now); err != nil {
				return err
			}
			if err := proc.Apply(&ev, now); err != nil {
				return err
			}
		}
		if len(batch) > 0 {
			next = batch[len(batch)-1].offset + 1
			pending += len(batch)
			if pending < s.cfg.BatchSize && time.Since(lastCommit) < s.cfg.BatchWindow {
				continue
			}
		} else if pending == 0 {
			// Idle: absence rules still run on the clock.
			fired := proc.Counts.TimersFired
			if err := proc.FireTimers(clock.Now().UnixNano()); err != nil {
				return err
			}
			if proc.Counts.TimersFired == fired {
				continue
			}
		}
		if err := commit(time.Since(lastSync) >= s.cfg.CommitInterval); err != nil {
			return err
		}
	}
}

// restore applies the changelog records of a partition that its local store
// does not have yet (those ending past the store's offset), in order.
func (s *ProcessorStage) restore(ctx context.Context, store *state.Store, partition int) (int, error) {
	pos, err := storedPosition(store)
	if err != nil {
		return 0, err
	}
	local, hasLocal := partitionOffset(pos)
	dialer := s.cfg.Dialer
	if dialer == nil {
		dialer = &kafka.Dialer{Timeout: 10 * time.Second}
	}
	conn, err := dialer.DialLeader(ctx, "tcp", s.cfg.Brokers[0], s.cfg.ChangelogTopic, partition)
	if err != nil {
		return 0, fmt.Errorf("engine: changelog %s/%d: %w", s.cfg.ChangelogTopic, partition, err)
	}
	defer conn.Close()
	first, last, err := conn.ReadOffsets()
	if err != nil {
		return 0, fmt.Errorf("engine: changelog %s/%d offsets: %w", s.cfg.ChangelogTopic, partition, err)
	}
	applied := 0
	start := first
	end, chunks, at, err := latestSnapshot(conn, first, last)
	if err != nil {
		return 0, fmt.Errorf("engine: changelog %s/%d: %w", s.cfg.ChangelogTopic, partition, err)
	}
	if end >= 0 {
		// Records before the snapshot end at or before its offset: a store
		// at or past it needs only what follows; an older one is replaced.
		start = end + 1
		if !hasLocal || at > local {
			if err := store.Clear(); err != nil {
				return 0, err
			}
			n, err := applyRange(conn, store, end-int64(chunks), end)
			if err != nil {
				return n, fmt.Errorf("engine: changelog %s/%d snapshot: %w", s.cfg.ChangelogTopic, partition, err)
			}
			local, hasLocal, applied = at, true, n
		}
	}
	if !hasLocal {
		local = -1
	}
	err = readRange(conn, start, last, func(m kafka.Message) error {
		var end int64 = -1
		cursors, snap := false, false
		for _, h := range m.Headers {
			switch h.Key {
			case "ledger_offset":
				end, _ = strconv.ParseInt(string(h.Value), 10, 64)
			case "cursors_only":
				cursors = true
			case headerSnapshotChunk, headerSnapshotEnd:
				snap = true // of an unfinished snapshot: the batches before it have it all
			}
		}
		// A batch of sink cursors ends where the batch before it did (its
		// owner's last delivery after its last state batch).
		if snap || !(end > local || cursors && end == local) {
			return nil
		}
		if err := store.ApplyRepr(m.Value); err != nil {
			return err
		}
		local = end
		applied++
		return nil
	})
	if err != nil {
		return applied, fmt.Errorf("engine: read changelog %s/%d: %w", s.cfg.ChangelogTopic, partition, err)
	}
	return applied, nil
}

// observeLag publishes the partition's consumer lag.
// Changelog record headers of a snapshot.
const (
	headerSnapshotChunk = "snapshot_chunk" // number of the chunk, from 1
	headerSnapshotEnd   = "snapshot_end"   // the chunks that precede it
)

// latestSnapshot finds the end record of the newest complete snapshot in
// [first, last), reading backwards a window at a time: its offset (-1 for
// none), how many chunk records precede it, and its ledger offset.
func latestSnapshot(conn *kafka.Conn, first, last int64) (end int64, chunks int, at int64, err error) {
	const window = 1000
	for hi := last; hi > first; hi -= window {
		lo := max(first, hi-window)
		end = -1
		err := readRange(conn, lo, hi, func(m kafka.Message) error {
			var n int
			var off int64 = -1
			for _, h := range m.Headers {
				switch h.Key {
				case headerSnapshotEnd:
					n, _ = strconv.Atoi(string(h.Value))
				case "ledger_offset":
					off, _ = strconv.ParseInt(string(h.Value), 10, 64)
				}
			}
			if n > 0 && off >= 0 && m.Offset-int64(n) >= first {
				end, chunks, at = m.Offset, n, off
			}
			return nil
		})
		if err != nil {
			return -1, 0, 0, err
		}
		if end >= 0 {
			return end, chunks, at, nil
		}
	}
	return -1, 0, 0, nil
}

// applyRange applies the records [lo, hi) to store.
func applyRange(conn *kafka.Conn, store *state.Store, lo, hi int64) (int, error) {
	n := 0
	err := readRange(conn, lo, hi, func(m kafka.Message) error {
		n++
		return store.ApplyRepr(m.Value)
	})
	return n, err
}

// readRange calls fn with every record of [lo, hi) in order.
func readRange(conn *kafka.Conn, lo, hi int64, fn func(kafka.Message) error) error {
	if _, err := conn.Seek(lo, kafka.SeekAbsolute); err != nil {
		return err
	}
	for off := lo; off < hi; {
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		batch := conn.ReadBatch(1, 64<<20)
		for off < hi {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			if m.Offset >= hi {
				off = hi
				break
			}
			off = m.Offset + 1
			if m.Offset < lo {
				continue // the start of a record batch that begins before lo
			}
			if err := fn(m); err != nil {
				batch.Close()
				return err
			}
		}
		if err := batch.Close(); err != nil && off < hi {
			return err
		}
	}
	return nil
}

// Assigned is the number of partitions the stage is processing now.
func (s *ProcessorStage) Assigned() int { return int(s.assigned.Load()) }

// Ready reports whether the stage has joined its group and been given its
// partitions at least once.
func (s *ProcessorStage) Ready() bool { return s.ready.Load() }

// waitForSinks publishes each sink's undelivered rows and blocks while the
// slowest exceptions sink is more than MaxBacklog rows behind, so a stalled
// sink pauses intake instead of growing the outbox. One head read per stream.
func (s *ProcessorStage) waitForSinks(ctx context.Context, partition string, store *state.Store, drainers []*sinks.Drainer) error {
	for {
		heads := map[state.Stream]uint64{}
		behind := uint64(0)
		for _, d := range drainers {
			st := d.Sink().Stream()
			head, ok := heads[st]
			if !ok {
				var err error
				if head, err = store.OutboxHead(st); err != nil {
					return err
				}
				heads[st] = head
			}
			depth := uint64(0)
			if head > d.Cursor() {
				depth = head - d.Cursor()
			}
			s.cfg.Metrics.outboxDepth.WithLabelValues(d.Sink().Name(), partition).Set(float64(depth))
			if st == state.StreamExceptions {
				behind = max(behind, depth)
			}
		}
		if behind <= s.cfg.MaxBacklog {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *ProcessorStage) add(now Counts, before *Counts) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &s.counts
	c.Processed += now.Processed - before.Processed
	c.DeadLettered += now.DeadLettered - before.DeadLettered
	c.Duplicates += now.Duplicates - before.Duplicates
	c.Late += now.Late - before.Late
	c.Opened += now.Opened - before.Opened
	c.Updated += now.Updated - before.Updated
	c.Resolved += now.Resolved - before.Resolved
	c.TimersFired += now.TimersFired - before.TimersFired
	*before = now
}
