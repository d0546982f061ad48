package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/skuwatch/skuwatch/engine"
	"github.com/skuwatch/skuwatch/sinks"
	"github.com/skuwatch/skuwatch/sources"
	"github.com/skuwatch/skuwatch/state"
)

const benchPartitions = 6

func benchCluster(b *testing.B) (*kfake.Cluster, []string) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(benchPartitions, "raw", "ledger"),
		kfake.SeedTopics(1, "dlq"), kfake.SeedTopics(3, "exceptions"), kfake.GroupMinSessionTimeout(500*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	return c, c.ListenAddrs()
}

// produceRaw writes n canonical events over 10,000 keys to the raw topic.
func produceRaw(b *testing.B, brokers []string, n int, at func(i int) time.Time, typ func(i int) string) {
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "raw", Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchSize: 1000, BatchTimeout: time.Millisecond, Transport: tr}
	defer w.Close()
	msgs := make([]kafka.Message, 0, 1000)
	for i := 0; i < n; i++ {
		k := i % 10_000
		ev := sources.Event{EventID: strconv.Itoa(i), Source: "pos", Type: typ(i), SKU: "SKU-" + strconv.Itoa(k/50),
			Location: "ST" + strconv.Itoa(k%50), Qty: 1, HasQty: true, EventTime: at(i)}
		if ev.Type == sources.TypeCount {
			ev.Source, ev.Qty, ev.HasQty, ev.OnHand, ev.HasOnHand = "wms", 0, false, 1e6, true
		}
		if ev.Type == sources.TypeTransferIn {
			ev.Source, ev.TransferID, ev.FromLocation, ev.Qty = "wms", "T"+ev.EventID, "WH", 3
		}
		msgs = append(msgs, kafka.Message{Key: engine.LedgerKey(&ev), Value: sources.AppendJSON(nil, &ev)})
		if len(msgs) == cap(msgs) || i == n-1 {
			if err := w.WriteMessages(context.Background(), msgs...); err != nil {
				b.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
}

// BenchmarkKafkaEndToEnd: b.N events through intake and processor on the
// in-process broker (Pebble, rules, outbox, JSONL and exceptions-topic sinks),
// next to a bare kafka-go group consumer reading the same raw topic in the
// same run, once before and once after the stages (bare-events/s is their
// mean, bare-drift how far apart they were). Reports both rates and their
// ratio.
func BenchmarkKafkaEndToEnd(b *testing.B) { benchStages(b, true, true) }

// BenchmarkKafkaIntakeStage: the intake stage alone (raw topic → validated
// ledger records), next to the bare consumer.
func BenchmarkKafkaIntakeStage(b *testing.B) { benchStages(b, true, false) }

// BenchmarkKafkaProcessorStage: the processor stage alone, over a ledger
// topic the intake filled before the timer started, next to the bare
// consumer. With the intake stage's figures it shows where the end-to-end
// CPU goes: the two stages share the two cores, so the end-to-end rate is
// about 1/(1/intake + 1/processor).
func BenchmarkKafkaProcessorStage(b *testing.B) { benchStages(b, false, true) }

func benchStages(b *testing.B, intake, processor bool) {
	cluster, brokers := benchCluster(b)
	defer cluster.Close()
	t0 := time.Date(2026, 6, 1, 6, 0, 0, 0, time.UTC)
	n := max(b.N, 1000)
	produceRaw(b, brokers, n, func(i int) time.Time { return t0.Add(time.Duration(i) * time.Millisecond) },
		func(i int) string {
			if i < 10_000 {
				return sources.TypeCount // open every ledger first
			}
			return sources.TypeSale
		})

	// The bare consumer: a kafka-go group reader that only fetches, run
	// before and after the stages (the machine's speed drifts; the mean of
	// the two brackets the stages' run).
	bare := func(group string) float64 {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, GroupID: group, GroupTopics: []string{"raw"},
			MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond, StartOffset: kafka.FirstOffset, QueueCapacity: 10_000})
		defer r.Close()
		start := time.Now()
		for i := 0; i < n; i++ {
			if _, err := r.FetchMessage(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		return float64(n) / time.Since(start).Seconds()
	}
	bareBefore := bare("bare-before")

	dir := b.TempDir()
	rs := defaultRules(b)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	in, _ := engine.NewIntakeStage(engine.IntakeStageConfig{Brokers: brokers, RawTopics: []string{"raw"}, LedgerTopic: "ledger", DLQTopic: "dlq"})
	proc, _ := engine.NewProcessorStage(engine.ProcessorStageConfig{Brokers: brokers, LedgerTopic: "ledger", DataDir: filepath.Join(dir, "state"),
		Rules: engine.NewRules(rs, nil), Clock: engine.ClockEvent, Tick: 20 * time.Millisecond,
		Sinks: func(p int) ([]sinks.Sink, error) {
			k, err := sinks.NewKafka("kafka", brokers, "exceptions")
			return []sinks.Sink{sinks.NewJSONL("jsonl", filepath.Join(dir, fmt.Sprintf("x-%d.jsonl", p)), state.StreamExceptions, false), k}, err
		}})
	run := func(stage func(context.Context) error) {
		wg.Add(1)
		go func() { defer wg.Done(); stage(ctx) }()
	}
	done := func() bool { return proc.Counts().Processed >= n }
	if !processor {
		done = func() bool { return in.Counts().Ledger >= n }
	}
	if !intake {
		run(in.Run) // untimed: the processor alone reads a full ledger
		for in.Counts().Ledger < n {
			time.Sleep(2 * time.Millisecond)
		}
	}
	b.ResetTimer()
	start := time.Now()
	var ru0 syscall.Rusage
	syscall.Getrusage(0, &ru0)
	if intake {
		run(in.Run)
	}
	if processor {
		run(proc.Run)
	}
	for !done() {
		time.Sleep(2 * time.Millisecond)
	}
	el := time.Since(start)
	var ru1 syscall.Rusage
	syscall.Getrusage(0, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	b.StopTimer()
	cancel()
	wg.Wait()
	bareAfter := bare("bare-after")
	bareRate := (bareBefore + bareAfter) / 2
	rate := float64(n) / el.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(bareRate, "bare-events/s")
	b.ReportMetric(math.Abs(bareBefore-bareAfter)/bareRate, "bare-drift")
	b.ReportMetric(rate/bareRate, "ratio")
	b.ReportMetric(cpu.Seconds()/el.Seconds(), "cores")
	b.ReportMetric(cpu.Seconds()/float64(n)*1e6, "cpu-µs/event")
}

// BenchmarkKafkaLatency produces short-received transfers (an exception each,
// at once) among sales at a fixed 20,000 events/s with the wall clock, and measures
// event-to-exception latency: from the produce call to the exception on the
// exceptions topic.
func BenchmarkKafkaLatency(b *testing.B) {
	cluster, brokers := benchCluster(b)
	defer cluster.Close()
	dir := b.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in, _ := engine.NewIntakeStage(engine.IntakeStageConfig{Brokers: brokers, RawTopics: []string{"raw"}, LedgerTopic: "ledger", DLQTopic: "dlq", BatchSize: 200})
	proc, _ := engine.NewProcessorStage(engine.ProcessorStageConfig{Brokers: brokers, LedgerTopic: "ledger", DataDir: filepath.Join(dir, "state"),
		Rules: engine.NewRules(defaultRules(b), nil), Clock: engine.ClockWall, BatchSize: 200, Tick: 20 * time.Millisecond,
		Sinks: func(p int) ([]sinks.Sink, error) {
			k, err := sinks.NewKafka("kafka", brokers, "exceptions")
			return []sinks.Sink{k}, err
		}})
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{in.Run, proc.Run} {
		wg.Add(1)
		go func(run func(context.Context) error) { defer wg.Done(); run(ctx) }(run)
	}
	defer wg.Wait()
	defer cancel()
	waitReady := time.Now().Add(20 * time.Second)
	for !proc.Ready() && time.Now().Before(waitReady) {
		time.Sleep(10 * time.Millisecond)
	}

	const rate = 20_000
	n := max(b.N, 2000)
	sent := make([]int64, n) // wall time each event was produced
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: "raw", Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchSize: 100, BatchTimeout: time.Millisecond, Transport: tr}
	defer w.Close()
	// The exceptions consumer waits long in a fetch (the broker answers as
	// soon as a record arrives); with a 10ms MaxWait, empty fetch cycles
	// added a tail of ~100ms of their own under kfake.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, GroupID: "latency", GroupTopics: []string{"exceptions"},
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 500 * time.Millisecond, StartOffset: kafka.FirstOffset})
	defer r.Close()
	var lat []float64
	var mu sync.Mutex
	want := 0
	for i := 0; i < n; i++ {
		if i%20 == 19 {
			want++
		}
	}
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		for got := 0; got < want; {
			m, err := r.FetchMessage(ctx) // no commit: a synchronous commit per message would be measured too
			if err != nil {
				return
			}
			var x struct {
				Trigger string `json:"trigger_event_id"`
				Change  string `json:"change"`
			}
			json.Unmarshal(m.Value, &x)
			if x.Change != engine.ChangeOpened || len(x.Trigger) < 2 {
				continue
			}
			i, _ := strconv.Atoi(x.Trigger[1:])
			mu.Lock()
			lat = append(lat, float64(time.Now().UnixNano()-sent[i])/1e6)
			mu.Unlock()
			got++
		}
	}()
	b.ResetTimer()
	start := time.Now()
	batch := make([]kafka.Message, 0, 100)
	for i := 0; i < n; i++ {
		k := i % 1000
		ev := sources.Event{EventID: "e" + strconv.Itoa(i), Source: "pos", Type: sources.TypeSale, SKU: "S" + strconv.Itoa(k), Location: "L",
			Qty: 1, HasQty: true, EventTime: time.Now().UTC()}
		if i%20 == 19 {
			// A transfer of 10 from the warehouse, received as 7, of a SKU
			// of its own (one open exception per rule and key).
			ev.SKU = "X" + strconv.Itoa(i)
			out := sources.Event{EventID: "o" + strconv.Itoa(i), Source: "wms", Type: sources.TypeTransferOut, SKU: ev.SKU, Location: "WH",
				ToLocation: "L", TransferID: "T" + strconv.Itoa(i), Qty: 10, HasQty: true, EventTime: ev.EventTime}
			batch = append(batch, kafka.Message{Key: engine.LedgerKey(&out), Value: sources.AppendJSON(nil, &out)})
			ev.Source, ev.Type, ev.TransferID, ev.FromLocation, ev.Qty = "wms", sources.TypeTransferIn, "T"+strconv.Itoa(i), "WH", 7
		}
		batch = append(batch, kafka.Message{Key: engine.LedgerKey(&ev), Value: sources.AppendJSON(nil, &ev)})
		if len(batch) >= 100 || i == n-1 {
			now := time.Now().UnixNano()
			for j := max(i-len(batch)+1, 0); j <= i; j++ {
				sent[j] = now
			}
			mu.Lock() // sent[] is read by the receiver
			mu.Unlock()
			if err := w.WriteMessages(ctx, batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
			if ahead := time.Duration(float64(i+1)/rate*float64(time.Second)) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
	}
	select {
	case <-recvDone:
	case <-time.After(60 * time.Second):
		b.Fatalf("only %d of %d exceptions arrived", len(lat), want)
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(lat[len(lat)/2], "p50-ms")
		b.ReportMetric(lat[len(lat)*99/100], "p99-ms")
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
}
