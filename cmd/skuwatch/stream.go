package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/skuwatch/skuwatch/engine"
	"github.com/skuwatch/skuwatch/rules"
	"github.com/skuwatch/skuwatch/sinks"
	"github.com/skuwatch/skuwatch/sinks/postgres"
	"github.com/skuwatch/skuwatch/sources"
	"github.com/skuwatch/skuwatch/state"
)

// Topics of the embedded demo cluster. The demo's chain forwards all its
// systems through one integration feed keyed by sku|location, so each key's
// events keep their order end to end. (With one topic per source system
// Kafka orders each source but not one source against another; the demo
// squeezes 70 days into seconds, so a moment of consumer skew between topics
// would be hours of event time.) The feed has one partition, as one
// integration feed in time order would: the event-time watermark is then
// the latest event time read, as in replay; across raw partitions it is the
// least of theirs, and a partition quiet in event time would hold timers
// back (engine/watermark.go).
const demoRaw = "raw.events"

const (
	demoLedger     = "skuwatch.ledger"
	demoDLQ        = "skuwatch.dlq"
	demoExceptions = "skuwatch.exceptions"
	demoPartitions = 6
)

type streamDemo struct {
	rs       *rules.Ruleset
	events   string // input file
	dir      string // outputs
	rate     int    // events/s produced, 0 = as fast as the broker takes them
	maxRun   time.Duration
	out      io.Writer
	produced atomic.Int64
	registry *prometheus.Registry
	outPaths []string
	pg       *postgres.DB // nil: no PostgreSQL sinks
}

// run streams the events file through an in-process Kafka broker and the
// real intake and processor stages, printing a line a second.
func (d *streamDemo) run(ctx context.Context) (engine.Counts, engine.IntakeCounts, error) {
	var none engine.Counts
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(demoPartitions, demoLedger), kfake.SeedTopics(1, demoDLQ),
		kfake.SeedTopics(3, demoExceptions), kfake.GroupMinSessionTimeout(500 * time.Millisecond)}
	opts = append(opts, kfake.SeedTopics(1, demoRaw))
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return none, engine.IntakeCounts{}, err
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	raw := []string{demoRaw}

	d.registry = prometheus.NewRegistry()
	metrics := engine.NewMetrics(d.registry)
	live := engine.NewRules(d.rs, metrics)
	intake, err := engine.NewIntakeStage(engine.IntakeStageConfig{Brokers: brokers, RawTopics: raw, LedgerTopic: demoLedger,
		DLQTopic: demoDLQ, SessionTimeout: time.Second})
	if err != nil {
		return none, engine.IntakeCounts{}, err
	}
	for p := 0; p < demoPartitions; p++ {
		d.outPaths = append(d.outPaths, fmt.Sprintf("%s/exceptions-%d.jsonl", d.dir, p))
	}
	proc, err := engine.NewProcessorStage(engine.ProcessorStageConfig{Brokers: brokers, LedgerTopic: demoLedger,
		DataDir: d.dir + "/state", Rules: live, Clock: engine.ClockEvent, Tick: 100 * time.Millisecond,
		SessionTimeout: time.Second, Metrics: metrics,
		Sinks: func(p int) ([]sinks.Sink, error) {
			k, err := sinks.NewKafka("kafka-exceptions", brokers, demoExceptions)
			if err != nil {
				return nil, err
			}
			out := []sinks.Sink{sinks.NewJSONL("jsonl-exceptions", d.outPaths[p], state.StreamExceptions, false), k}
			if d.pg != nil {
				out = append(out, d.pg.Sinks("postgres")...)
			}
			return out, nil
		}})
	if err != nil {
		return none, engine.IntakeCounts{}, err
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, f := range []func(context.Context) error{intake.Run, proc.Run} {
		wg.Add(1)
		go func(f func(context.Context) error) {
			defer wg.Done()
			if err := f(runCtx); err != nil {
				errs <- err
			}
		}(f)
	}
	lines, err := countLines(d.events)
	if err != nil {
		return none, engine.IntakeCounts{}, err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := d.produce(runCtx, brokers); err != nil && runCtx.Err() == nil {
			errs <- err
		}
	}()

	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastProcessed := 0
	var result error
loop:
	for {
		select {
		case err := <-errs:
			result = err
			break loop
		case <-ctx.Done():
			result = ctx.Err()
			break loop
		case <-tick.C:
			ic, pc := intake.Counts(), proc.Counts()
			fmt.Fprintf(d.out, "%5.0fs  produced %7d  events/s %7d  intake lag %6d  ledger lag %6d  dead-lettered %4d  exceptions %s\n",
				time.Since(start).Seconds(), d.produced.Load(), pc.Processed-lastProcessed,
				// (the processor may apply a record before the intake has
				// counted its acknowledgement: lags do not go below zero)
				max(d.produced.Load()-int64(ic.Read), 0), max(ic.Ledger-pc.Processed, 0), ic.DeadLettered, d.byRule())
			lastProcessed = pc.Processed
			if int(d.produced.Load()) == lines && ic.Read == lines && pc.Processed == ic.Ledger {
				break loop
			}
			if d.maxRun > 0 && time.Since(start) > d.maxRun {
				fmt.Fprintf(d.out, "stopping at --duration %s before the stream was fully processed\n", d.maxRun)
				break loop
			}
		}
	}
	stop()
	wg.Wait()
	return proc.Counts(), intake.Counts(), result
}

// byRule sums the exceptions opened so far, by rule, from the metrics.
func (d *streamDemo) byRule() string {
	mfs, err := d.registry.Gather()
	if err != nil {
		return "?"
	}
	counts := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "skuwatch_exceptions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var rule, change string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "rule":
					rule = l.GetValue()
				case "change":
					change = l.GetValue()
				}
			}
			if change == engine.ChangeOpened {
				counts[rule] += m.GetCounter().GetValue()
			}
		}
	}
	names := make([]string, 0, len(counts))
	for n := range counts {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s=%d ", n, int(counts[n]))
	}
	return strings.TrimSpace(b.String())
}

// produce writes the events file to the raw topic at the configured rate,
// keyed by sku|location (lines too broken to say theirs go unkeyed).
func (d *streamDemo) produce(ctx context.Context, brokers []string) error {
	f, err := os.Open(d.events)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: demoRaw, Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		BatchSize: 1000, BatchTimeout: 2 * time.Millisecond, Transport: tr}
	defer w.Close()
	var dec sources.Decoder
	var pending []kafka.Message
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		if err := w.WriteMessages(ctx, pending...); err != nil {
			return err
		}
		d.produced.Add(int64(len(pending)))
		pending = pending[:0]
		return nil
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	start, n := time.Now(), 0
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		var key []byte
		if ev, err := dec.Decode(line); err == nil {
			key = engine.LedgerKey(&ev)
		}
		pending = append(pending, kafka.Message{Key: key, Value: line})
		n++
		if n%500 == 0 {
			if err := flush(); err != nil {
				return err
			}
			if d.rate > 0 {
				if ahead := time.Duration(float64(n)/float64(d.rate)*float64(time.Second)) - time.Since(start); ahead > 0 {
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(ahead):
					}
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return flush()
}

func countLines(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	r := bufio.NewReaderSize(f, 1<<20)
	for {
		b, err := r.ReadSlice('\n')
		if len(b) > 0 && b[len(b)-1] == '\n' {
			n++
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return n, nil
		}
	}
}
