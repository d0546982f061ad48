package engine

import (
	"bufio"
	"bytes"
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/skuwatch/skuwatch/sources"
	"github.com/skuwatch/skuwatch/sources/synth"
)

func topicCount(t *testing.T, addr, topic string, parts int) int {
	t.Helper()
	n := 0
	for p := 0; p < parts; p++ {
		conn, err := kafka.DialLeader(context.Background(), "tcp", addr, topic, p)
		if err != nil {
			t.Fatal(err)
		}
		last, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		n += int(last)
	}
	return n
}

func readTopic(t *testing.T, addr, topic string, parts int) map[int][]kafka.Message {
	t.Helper()
	out := map[int][]kafka.Message{}
	for p := 0; p < parts; p++ {
		conn, err := kafka.DialLeader(context.Background(), "tcp", addr, topic, p)
		if err != nil {
			t.Fatal(err)
		}
		last, _ := conn.ReadLastOffset()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		b := conn.ReadBatch(1, 64<<20)
		for i := int64(0); i < last; i++ {
			m, err := b.ReadMessage()
			if err != nil {
				t.Fatalf("%s/%d: %v", topic, p, err)
			}
			out[p] = append(out[p], m)
		}
		b.Close()
		conn.Close()
	}
	return out
}

// background runs a stage until the returned stop is called; an error from
// it fails the test.
func background(t *testing.T, name string, run func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := run(ctx); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}()
	return func() { cancel(); wg.Wait() }
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// intakeCluster starts a broker with topics (and "dlq") for the test's
// life, and a transport for its writers.
func intakeCluster(t *testing.T, topics ...kfake.Opt) (addr string, transport *kafka.Transport) {
	t.Helper()
	opts := append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(1, "dlq"), kfake.GroupMinSessionTimeout(500 * time.Millisecond)}, topics...)
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	transport = &kafka.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	return cluster.ListenAddrs()[0], transport
}

// TestIntakeStage runs the intake stage against the Kafka wire protocol:
// raw POS and WMS topics in, ledger records (murmur2 by sku|location, with
// the destination leg of every transfer) and dead letters (original key and bytes,
// reason and source coordinates in headers) out; a restart resumes from the
// committed offsets.
func TestIntakeStage(t *testing.T) {
	addr, transport := intakeCluster(t, kfake.SeedTopics(2, "raw.pos", "raw.wms"), kfake.SeedTopics(6, "ledger"))

	var buf bytes.Buffer
	if _, _, err := synth.Generate(synth.Config{Stores: 2, SKUs: 10, Days: 20, Seed: 4, MalformedRate: 0.01}, &buf); err != nil {
		t.Fatal(err)
	}
	in := NewIntake(IntakeConfig{})
	var pos, wms []kafka.Message
	wantLedger, wantDLQ := 0, 0
	var maxEventTime int64
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		legs, rej := in.Accept(nil, line, time.Time{})
		if rej != nil {
			wantDLQ++
		}
		wantLedger += len(legs)
		for _, l := range legs {
			maxEventTime = max(maxEventTime, l.EventTime.UnixNano())
		}
		if bytes.Contains(line, []byte(`"source":"pos"`)) {
			pos = append(pos, kafka.Message{Value: line})
		} else {
			wms = append(wms, kafka.Message{Value: line})
		}
	}
	// A malformed record with a key: the dead letter keeps both.
	pos = append(pos, kafka.Message{Key: []byte("k-bad"), Value: []byte("not json")})
	wantDLQ++
	for topic, msgs := range map[string][]kafka.Message{"raw.pos": pos, "raw.wms": wms} {
		w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, RequiredAcks: kafka.RequireAll, BatchSize: 1000, BatchTimeout: time.Millisecond, Transport: transport}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}

	run := func() (stop func()) {
		st, err := NewIntakeStage(IntakeStageConfig{Brokers: []string{addr}, RawTopics: []string{"raw.pos", "raw.wms"},
			LedgerTopic: "ledger", DLQTopic: "dlq", SessionTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return background(t, "intake stage", st.Run)
	}
	stop := run()
	waitFor(t, "all ledger records", func() bool { return topicCount(t, addr, "ledger", 6) >= wantLedger })
	waitFor(t, "all dead letters", func() bool { return topicCount(t, addr, "dlq", 1) >= wantDLQ })
	stop()

	if got := topicCount(t, addr, "ledger", 6); got != wantLedger {
		t.Errorf("ledger holds %d records, want %d", got, wantLedger)
	}
	var dec sources.Decoder
	var bal kafka.Murmur2Balancer
	expected := 0
	for p, msgs := range readTopic(t, addr, "ledger", 6) {
		for _, m := range msgs {
			st, rest, err := splitLedgerRecord(m.Value)
			if err != nil || !st.ok {
				t.Fatalf("ledger record without a stamp (%v): %x", err, m.Value)
			}
			if st.watermark < 0 || st.watermark > maxEventTime {
				t.Errorf("ledger record stamped with watermark %d", st.watermark)
			}
			ev, err := dec.DecodeBinary(rest)
			if err != nil {
				t.Fatalf("ledger record does not decode: %v", err)
			}
			if string(m.Key) != ev.SKU+"|"+ev.Location {
				t.Errorf("key %q for %s at %s", m.Key, ev.SKU, ev.Location)
			}
			if q := bal.Balance(kafka.Message{Key: m.Key}, 0, 1, 2, 3, 4, 5); q != p {
				t.Errorf("key %q on partition %d, murmur2 says %d", m.Key, p, q)
			}
			if ev.Type == sources.TypeTransferExpected {
				expected++
				if _, _, rej := in.acceptLedger(m.Value, time.Time{}); rej != nil {
					t.Errorf("ledger refuses its own transfer notice: %v", rej)
				}
			}
		}
	}
	if expected == 0 {
		t.Error("no transfer_expected legs on the ledger")
	}
	dl := readTopic(t, addr, "dlq", 1)[0]
	if len(dl) != wantDLQ || wantDLQ == 0 {
		t.Fatalf("%d dead letters, want %d", len(dl), wantDLQ)
	}
	keyed := 0
	for _, m := range dl {
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		if h["reason"] == "" || h["source_topic"] == "" || h["source_offset"] == "" {
			t.Errorf("dead letter headers %v", h)
		}
		if string(m.Key) == "k-bad" && string(m.Value) == "not json" {
			keyed++
		}
	}
	if keyed != 1 {
		t.Errorf("%d dead letters with the raw key k-bad and the original bytes, want 1", keyed)
	}

	// A restart resumes after the committed offsets: one new raw record
	// makes exactly one more ledger record.
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: "raw.pos", RequiredAcks: kafka.RequireAll, Transport: transport}
	w.WriteMessages(context.Background(), kafka.Message{Value: []byte(`{"event_id":"new-1","source":"pos","type":"sale","sku":"X","location":"Y","qty":1,"event_time":"2026-06-01T10:00:00Z"}`)})
	w.Close()
	stop = run()
	waitFor(t, "the new record", func() bool { return topicCount(t, addr, "ledger", 6) >= wantLedger+1 })
	stop()
	if got := topicCount(t, addr, "ledger", 6); got != wantLedger+1 {
		t.Errorf("after a restart the ledger holds %d records, want %d: the stage re-read committed input", got, wantLedger+1)
	}
}

// TestIntakeStageRebalance: a second instance joins mid-stream and the first
// leaves; every raw record reaches the ledger (at least once: what a member
// had not acknowledged when its partitions moved is read again), nothing is
// lost.
func TestIntakeStageRebalance(t *testing.T) {
	addr, transport := intakeCluster(t, kfake.SeedTopics(4, "raw"), kfake.SeedTopics(4, "ledger"))
	const n = 40_000
	t0 := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: "raw", Balancer: &kafka.RoundRobin{}, RequiredAcks: kafka.RequireAll,
		BatchSize: 1000, BatchTimeout: time.Millisecond, Transport: transport}
	msgs := make([]kafka.Message, 0, n)
	for i := range n {
		ev := sources.Event{EventID: strconv.Itoa(i), Source: "pos", Type: sources.TypeSale, SKU: "S" + strconv.Itoa(i%97),
			Location: "L1", Qty: 1, HasQty: true, EventTime: t0.Add(time.Duration(i) * time.Second)}
		msgs = append(msgs, kafka.Message{Value: sources.AppendJSON(nil, &ev)})
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	start := func() (*IntakeStage, func()) {
		st, err := NewIntakeStage(IntakeStageConfig{Brokers: []string{addr}, RawTopics: []string{"raw"},
			LedgerTopic: "ledger", DLQTopic: "dlq", SessionTimeout: time.Second, BatchSize: 200})
		if err != nil {
			t.Fatal(err)
		}
		return st, background(t, "intake stage", st.Run)
	}
	a, stopA := start()
	waitFor(t, "A under way", func() bool { return a.Counts().Ledger > 0 })
	b, stopB := start()
	waitFor(t, "B under way", func() bool { return b.Counts().Ledger > 0 })
	stopA()
	// Records A had written but not committed are on the ledger twice: count
	// distinct events, not records.
	distinct := func() int {
		seen := map[string]bool{}
		var dec sources.Decoder
		for _, recs := range readTopic(t, addr, "ledger", 4) {
			for _, m := range recs {
				_, rest, err := splitLedgerRecord(m.Value)
				if err != nil {
					t.Fatal(err)
				}
				ev, err := dec.DecodeBinary(rest)
				if err != nil {
					t.Fatal(err)
				}
				seen[ev.EventID] = true
			}
		}
		return len(seen)
	}
	waitFor(t, "every event on the ledger", func() bool { return topicCount(t, addr, "ledger", 4) >= n && distinct() == n })
	stopB()
	if got := distinct(); got != n {
		t.Errorf("%d distinct events on the ledger, want %d", got, n)
	}
	t.Logf("A wrote %d, B %d ledger records for %d events", a.Counts().Ledger, b.Counts().Ledger, n)
}
