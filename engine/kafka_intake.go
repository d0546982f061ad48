package engine

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/skuwatch/skuwatch/sinks"
	"github.com/skuwatch/skuwatch/sources"
)

// IntakeStageConfig configures the intake stage.
type IntakeStageConfig struct {
	Brokers     []string // required
	RawTopics   []string // required: one per source system
	GroupID     string   // the intake consumer group. The default is "skuwatch-intake".
	LedgerTopic string   // required
	DLQTopic    string   // required
	Intake      IntakeConfig
	// Clock judges clock skew. The default is the wall clock.
	Clock Clock
	// Dialer and Transport carry TLS and SASL for the reader and the writers.
	// The defaults are kafka-go's.
	Dialer    *kafka.Dialer
	Transport *kafka.Transport
	// BatchSize bounds the records read before one produce and commit. The
	// default is 1000.
	BatchSize int
	// SessionTimeout of the consumer group. The default is kafka-go's (30s).
	SessionTimeout time.Duration
	Logger         *slog.Logger
}

// IntakeStage reads the raw topics, validates every record, produces the
// ledger records (keyed sku|location, murmur2) and the dead letters, and
// commits the raw offsets only after both were acknowledged: at least once,
// and the processor applies a redelivered event id once.
type IntakeStage struct {
	cfg    IntakeStageConfig
	intake *Intake
	read   atomic.Int64
	ledger atomic.Int64
	dead   atomic.Int64
}

// IntakeCounts are the intake stage's totals since Run started.
type IntakeCounts struct{ Read, Ledger, DeadLettered int }

// Counts returns the totals; safe to call from any goroutine.
func (s *IntakeStage) Counts() IntakeCounts {
	return IntakeCounts{int(s.read.Load()), int(s.ledger.Load()), int(s.dead.Load())}
}

// NewIntakeStage checks the configuration.
func NewIntakeStage(cfg IntakeStageConfig) (*IntakeStage, error) {
	if len(cfg.Brokers) == 0 || len(cfg.RawTopics) == 0 || cfg.LedgerTopic == "" || cfg.DLQTopic == "" {
		return nil, errors.New("engine: intake stage needs brokers, raw topics, a ledger topic and a DLQ topic")
	}
	if cfg.GroupID == "" {
		cfg.GroupID = "skuwatch-intake"
	}
	if cfg.Clock == nil {
		cfg.Clock = WallClock{}
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &IntakeStage{cfg: cfg, intake: NewIntake(cfg.Intake)}, nil
}

// writer makes a producer for write, which sizes its batches to hold a
// whole WriteMessages call for a partition.
func (s *IntakeStage) writer(topic string, t *kafka.Transport) *kafka.Writer {
	return &kafka.Writer{Addr: kafka.TCP(s.cfg.Brokers...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchBytes: 64 << 20, BatchTimeout: time.Millisecond,
		Transport: sinks.CachedMetadata(t, time.Second)}
}

// Run consumes until ctx ends; it owns its group membership and writers and
// closes them before it returns. Cancellation is a normal stop (nil).
func (s *IntakeStage) Run(ctx context.Context) error {
	transport := s.cfg.Transport
	if transport == nil {
		// An own transport, not kafka-go's shared default, so that its
		// connections end with the stage.
		transport = &kafka.Transport{}
		defer transport.CloseIdleConnections()
	}
	ledger, dlq := s.writer(s.cfg.LedgerTopic, transport), s.writer(s.cfg.DLQTopic, transport)
	defer func() { // after the group is left: writers flush
		ledger.Close()
		dlq.Close()
	}()
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{ID: s.cfg.GroupID, Brokers: s.cfg.Brokers,
		Topics: s.cfg.RawTopics, Dialer: s.cfg.Dialer, SessionTimeout: s.cfg.SessionTimeout,
		HeartbeatInterval: heartbeat(s.cfg.SessionTimeout), StartOffset: kafka.FirstOffset})
	if err != nil {
		return fmt.Errorf("engine: intake group: %w", err)
	}
	defer group.Close()
	var id intakeID // this instance, in its stamps
	rand.Read(id[:])
	wm := newIntakeWatermark(s.rawPartitions(ctx), time.Now())
	for {
		gen, err := group.Next(ctx)
		if ctx.Err() != nil {
			s.cfg.Logger.Debug("intake stage stopped", "cause", ctx.Err())
			return nil
		}
		if err != nil {
			// A rebalance the member lost is normal group life: join again.
			s.cfg.Logger.Warn("intake group: joining again", "err", err)
			sleepCtx(ctx, 200*time.Millisecond)
			continue
		}
		done := make(chan error, 1)
		gen.Start(func(gctx context.Context) {
			// The generation's context ends with the generation; the
			// stage's ends the generation's work too.
			gctx, cancel := context.WithCancel(gctx)
			defer context.AfterFunc(ctx, cancel)()
			defer cancel()
			done <- s.runGeneration(gctx, gen, ledger, dlq, id, wm)
		})
		if err := <-done; err != nil {
			return err
		}
	}
}

// runGeneration reads the raw partitions of one group generation until it
// ends. Two goroutines, so that validating one batch overlaps with waiting
// for the acknowledgement of the one before: the reading loop fills chunks,
// the writer produces them in order and only then commits their raw
// offsets (every 100 ms). Three chunks circulate: the loop blocks when the
// writer is two behind.
func (s *IntakeStage) runGeneration(ctx context.Context, gen *kafka.Generation, ledger, dlq *kafka.Writer, id intakeID, wm *intakeWatermark) error {
	n := 0
	for _, as := range gen.Assignments {
		n += len(as)
	}
	ready := make(chan *fetch, max(n, 1))
	var readers []*partitionReader
	for topic, as := range gen.Assignments {
		for _, a := range as {
			next := a.Offset
			if next < 0 {
				next = kafka.FirstOffset
			}
			readers = append(readers, startPartitionReader(ctx, s.cfg.Dialer, s.cfg.Brokers, topic, a.ID, next, true, ready, s.cfg.Logger))
		}
	}
	defer func() {
		for _, r := range readers {
			r.close()
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	full, free := make(chan *intakeChunk, 2), make(chan *intakeChunk, 3)
	for range cap(free) {
		free <- &intakeChunk{next: map[rawPartition]int64{}}
	}
	g.Go(func() error {
		defer close(full)
		q := fetchQueue{ready: ready}
		var legs []sources.Event
		for {
			var c *intakeChunk
			select {
			case c = <-free:
			case <-gctx.Done():
				return nil
			}
			c.read, c.ledger, c.dlq, c.buf = 0, c.ledger[:0], c.dlq[:0], c.buf[:0]
			clear(c.next)
			wait := time.Second // for the first records; then what is there
			for c.read < s.cfg.BatchSize {
				recs, f, err := q.take(gctx, wait, s.cfg.BatchSize-c.read)
				if err != nil {
					return nil
				}
				if len(recs) == 0 {
					if c.read == 0 {
						continue
					}
					break
				}
				wait = 2 * time.Millisecond
				now, wall := s.cfg.Clock.Now(), time.Now()
				part := rawPartition{f.from.topic, f.from.partition}
				for _, m := range recs {
					var rej *Rejection
					legs, rej = s.intake.Accept(legs[:0], m.value, now)
					if rej != nil {
						c.dlq = append(c.dlq, kafka.Message{Key: m.key, Value: m.value, Headers: []kafka.Header{
							{Key: "reason", Value: []byte(rej.Reason)},
							{Key: "field", Value: []byte(rej.Field)},
							{Key: "source_topic", Value: []byte(part.topic)},
							{Key: "source_partition", Value: []byte(strconv.Itoa(part.partition))},
							{Key: "source_offset", Value: []byte(strconv.FormatInt(m.offset, 10))},
						}})
						continue
					}
					wm.observe(part, legs[0].EventTime.UnixNano(), wall)
					low := wm.low(wall)
					for i := range legs {
						start := len(c.buf)
						c.buf = appendLedgerRecord(c.buf, id, low, &legs[i])
						c.ledger = append(c.ledger, kafka.Message{Key: LedgerKey(&legs[i]), Value: c.buf[start:len(c.buf):len(c.buf)]})
					}
				}
				c.read += len(recs)
				c.next[part] = recs[len(recs)-1].offset + 1
			}
			full <- c
		}
	})
	// The records are read again (by this or another member) from the last
	// committed offsets; the processor applies a redelivered event id once.
	offsets := newOffsetCommitter("the records since the last commit are read again")
	var writing sync.WaitGroup
	writing.Add(1)
	g.Go(func() error {
		offsets.run(gctx, gen, &writing, 100*time.Millisecond, s.cfg.Logger)
		return nil
	})
	g.Go(func() error {
		defer writing.Done()
		for c := range full {
			if err := write(gctx, ledger, c.ledger); err != nil {
				return err
			}
			if err := write(gctx, dlq, c.dlq); err != nil {
				return err
			}
			if gctx.Err() != nil {
				return nil // unacknowledged: the batch is read again; the processor dedups it
			}
			for p, next := range c.next {
				offsets.set(p.topic, p.partition, next)
			}
			s.read.Add(int64(c.read))
			s.ledger.Add(int64(len(c.ledger)))
			s.dead.Add(int64(len(c.dlq)))
			free <- c
		}
		return nil
	})
	return g.Wait()
}

// rawPartitions lists the partitions of the raw topics, so the watermark
// waits for all of them at start; nil (only the partitions seen count) if
// the metadata cannot be read.
func (s *IntakeStage) rawPartitions(ctx context.Context) []rawPartition {
	d := s.cfg.Dialer
	if d == nil {
		d = kafka.DefaultDialer
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, b := range s.cfg.Brokers {
		conn, err := d.DialContext(ctx, "tcp", b)
		if err != nil {
			continue
		}
		ps, err := conn.ReadPartitions(s.cfg.RawTopics...)
		conn.Close()
		if err != nil {
			continue
		}
		out := make([]rawPartition, len(ps))
		for i, p := range ps {
			out[i] = rawPartition{p.Topic, p.ID}
		}
		return out
	}
	s.cfg.Logger.Warn("raw topic metadata unavailable; the event-time watermark counts the partitions as they are read")
	return nil
}

// intakeChunk is one batch of raw records and what the intake made of them.
// The ledger values are slices of buf, which is reused once the chunk is
// acknowledged (a slice made before buf grew keeps the old array).
type intakeChunk struct {
	read        int // raw records
	next        map[rawPartition]int64
	ledger, dlq []kafka.Message
	buf         []byte
}

// write produces msgs as one batch per partition: kafka-go keeps a
// partition's order only across calls, so a call must not split into
// batches that a retry could reorder. BatchSize is the call's length (no
// partition gets more), set for each call by its only caller — kafka-go
// reads it in WriteMessages and allocates a batch of that capacity, so a
// fixed large size cost a few hundred KiB per partition per call.
func write(ctx context.Context, w *kafka.Writer, msgs []kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	w.BatchSize = len(msgs)
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("engine: produce to %s: %w", w.Topic, err)
	}
	return nil
}
