package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/skuwatch/skuwatch/sinks"
	"github.com/skuwatch/skuwatch/sources"
	"github.com/skuwatch/skuwatch/sources/synth"
	"github.com/skuwatch/skuwatch/state"
)

// finalExceptions reads exception JSONL files and returns the last version of
// each exception, failing on a version seen twice.
func finalExceptions(t *testing.T, paths ...string) map[string]state.Exception {
	t.Helper()
	out := map[string]state.Exception{}
	seen := map[string]bool{}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<22)
		for sc.Scan() {
			var x state.Exception
			if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
				t.Fatal(err)
			}
			v := fmt.Sprintf("%s/%d", x.ExceptionID, x.Version)
			if seen[v] {
				t.Errorf("exception %s delivered twice", v)
			}
			seen[v] = true
			if x.Version > out[x.ExceptionID].Version {
				out[x.ExceptionID] = x
			}
		}
		f.Close()
	}
	return out
}

type ledgerFixture struct {
	addr, dir, events string
	records           int
}

// newLedger generates a stream and produces its ledger records to a
// 4-partition ledger topic.
func newLedger(t *testing.T, cfg synth.Config) (*kfake.Cluster, ledgerFixture) {
	t.Helper()
	cluster, fx, produce := newLedgerLater(t, cfg)
	produce()
	return cluster, fx
}

// newLedgerLater is newLedger with the produce step left to the caller.
func newLedgerLater(t *testing.T, cfg synth.Config) (*kfake.Cluster, ledgerFixture, func()) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "ledger", "changelog", "changelog2"), kfake.GroupMinSessionTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	fx := ledgerFixture{addr: cluster.ListenAddrs()[0], dir: t.TempDir()}
	fx.events, _ = genEvents(t, cfg)
	f, _ := os.Open(fx.events)
	defer f.Close()
	in := NewIntake(IntakeConfig{})
	var msgs []kafka.Message
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		legs, rej := in.Accept(nil, sc.Bytes(), time.Time{})
		if rej != nil {
			continue
		}
		for i := range legs {
			msgs = append(msgs, kafka.Message{Key: LedgerKey(&legs[i]), Value: sources.AppendJSON(nil, &legs[i])})
		}
	}
	fx.records = len(msgs)
	return cluster, fx, func() { produceLedger(t, fx.addr, msgs) }
}

func produceLedger(t *testing.T, addr string, msgs []kafka.Message) {
	t.Helper()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	// Acknowledged writes in sequence: with kafka-go's default of no acks,
	// batches of one partition can land out of order.
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: "ledger", Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll, BatchSize: 1000, BatchTimeout: time.Millisecond, Transport: tr}
	for len(msgs) > 0 {
		n := min(len(msgs), 1000)
		if err := w.WriteMessages(context.Background(), msgs[:n]...); err != nil {
			t.Fatal(err)
		}
		msgs = msgs[n:]
	}
	w.Close()
}

func (fx ledgerFixture) outPaths() []string { return fx.outsFor("") }

// outsFor names one instance's exception files, a file per partition.
func (fx ledgerFixture) outsFor(who string) []string {
	var ps []string
	for p := 0; p < 4; p++ {
		ps = append(ps, filepath.Join(fx.dir, fmt.Sprintf("%sexceptions-%d.jsonl", who, p)))
	}
	return ps
}

// start runs a processor stage on fx's ledger until stop is called.
func (fx ledgerFixture) start(t *testing.T) (*ProcessorStage, func()) {
	t.Helper()
	return fx.startInstance(t, "state", fx.outPaths(), "")
}

// startInstance runs a stage with its own data dir and outputs.
func (fx ledgerFixture) startInstance(t *testing.T, data string, outs []string, changelog string, opts ...func(*ProcessorStageConfig)) (*ProcessorStage, func()) {
	t.Helper()
	cfg := ProcessorStageConfig{Brokers: []string{fx.addr}, LedgerTopic: "ledger",
		DataDir: filepath.Join(fx.dir, data), Rules: defaultRules(t), Clock: ClockEvent, Tick: 50 * time.Millisecond,
		SessionTimeout: time.Second, ChangelogTopic: changelog,
		Sinks: func(p int) ([]sinks.Sink, error) {
			return []sinks.Sink{sinks.NewJSONL("jsonl", outs[p], state.StreamExceptions, true)}, nil
		}}
	for _, o := range opts {
		o(&cfg)
	}
	st, err := NewProcessorStage(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return st, background(t, "processor stage", st.Run)
}

// withSink adds a sink to every partition of a stage.
func withSink(f func(p int) sinks.Sink) func(*ProcessorStageConfig) {
	return func(c *ProcessorStageConfig) {
		prev := c.Sinks
		c.Sinks = func(p int) ([]sinks.Sink, error) {
			out, err := prev(p)
			return append(out, f(p)), err
		}
	}
}

// compareWithReplay checks that the stage's final exceptions equal a replay
// of the same events: the same ids, rules, keys and final statuses.
func compareWithReplay(t *testing.T, fx ledgerFixture, got map[string]state.Exception) {
	t.Helper()
	ref := newFiles(t, fx.events)
	replay(t, ref, 1000)
	want := finalExceptions(t, ref.out)
	if len(want) == 0 {
		t.Fatal("the reference replay raised no exceptions")
	}
	missing, extra, differ := 0, 0, 0
	for id, w := range want {
		g, ok := got[id]
		switch {
		case !ok:
			missing++
			if missing <= 3 {
				t.Errorf("missing %s %s %s/%s", id, w.Rule, w.SKU, w.Location)
			}
		case g.Status != w.Status || g.Rule != w.Rule || g.SKU != w.SKU || g.Location != w.Location:
			differ++
			if differ <= 3 {
				t.Errorf("%s: %s %s, replay says %s %s", id, g.Rule, g.Status, w.Rule, w.Status)
			}
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			extra++
			if extra <= 3 {
				t.Errorf("extra %s %s %s/%s detected %s by %s/%s: %v", id, g.Rule, g.SKU, g.Location, g.DetectedAt, g.TriggerSource, g.TriggerEventID, g.Evidence)
			}
		}
	}
	t.Logf("%d ledger records; replay %d exceptions, stage %d", fx.records, len(want), len(got))
	if missing+extra+differ > 0 {
		t.Errorf("against replay's %d exceptions: %d missing, %d extra, %d in another state", len(want), missing, extra, differ)
	}
}

// TestProcessorStageMatchesReplay: the ledger through the Kafka processor
// stage ends with the same exceptions (ids, rules, keys, final statuses) as a
// replay of the same events.
// streamed is large enough that a stop lands mid-stream.
var streamed = synth.Config{Stores: 8, SKUs: 40, Days: 60, Seed: 6}

func TestProcessorStageMatchesReplay(t *testing.T) {
	cluster, fx := newLedger(t, streamed)
	defer cluster.Close()
	st, stop := fx.start(t)
	waitFor(t, "every ledger record", func() bool { return st.Counts().Processed >= fx.records })
	stop()
	if c := st.Counts(); c.Processed != fx.records {
		t.Errorf("processed %d of %d records", c.Processed, fx.records)
	}
	compareWithReplay(t, fx, finalExceptions(t, fx.outPaths()...))
}

// TestProcessorStageRestart stops the stage mid-stream and starts it again on
// the same data dir: no exception is lost or delivered twice.
func TestProcessorStageRestart(t *testing.T) {
	cluster, fx := newLedger(t, streamed)
	defer cluster.Close()
	st, stop := fx.start(t)
	waitFor(t, "a third of the records", func() bool { return st.Counts().Processed >= fx.records/3 })
	stop()
	first := st.Counts().Processed
	t.Logf("first run stopped after %d of %d records", first, fx.records)
	st2, stop2 := fx.start(t)
	waitFor(t, "the rest of the records", func() bool { return first+st2.Counts().Processed >= fx.records })
	stop2()
	if total := first + st2.Counts().Processed; total != fx.records {
		t.Errorf("processed %d records over two runs, want %d (each once)", total, fx.records)
	}
	compareWithReplay(t, fx, finalExceptions(t, fx.outPaths()...))
}

// TestProcessorStageTakeover: instance A processes part of the stream and
// stops; instance B, with an empty data dir of its own, takes every
// partition over, restores their state from the changelog, and finishes with
// the same exceptions a single uninterrupted run gives.
func TestProcessorStageTakeover(t *testing.T) {
	cluster, fx := newLedger(t, streamed)
	defer cluster.Close()
	outs := fx.outsFor
	a, stopA := fx.startInstance(t, "a", outs("a-"), "changelog")
	waitFor(t, "a third of the records", func() bool { return a.Counts().Processed >= fx.records/3 })
	stopA()
	first := a.Counts().Processed
	t.Logf("instance A stopped after %d of %d records", first, fx.records)
	b, stopB := fx.startInstance(t, "b", outs("b-"), "changelog")
	// A may have processed everything before it stopped: B's part can be
	// only the restore and the delivery of the restored outboxes.
	fx.waitForTakeover(t, b, first, outs("b-"))
	stopB()
	if total := first + b.Counts().Processed; total != fx.records {
		t.Errorf("A and B processed %d records, want %d (each once)", total, fx.records)
	}
	// B holds every partition's whole state, outbox included, so its outputs
	// alone are the complete history.
	compareWithReplay(t, fx, finalExceptions(t, outs("b-")...))
}

// waitForTakeover waits until instance b processed the records the first
// instance had not (done of them), owns every partition and has delivered
// the taken-over partitions' history from their restored outboxes (in the
// background): its outputs hold as many exceptions as a replay gives.
func (fx ledgerFixture) waitForTakeover(t *testing.T, b *ProcessorStage, done int, outs []string) {
	t.Helper()
	waitFor(t, "the rest of the records on B", func() bool { return done+b.Counts().Processed >= fx.records })
	waitFor(t, "B holding every partition", func() bool { return b.Assigned() == 4 })
	ref := newFiles(t, fx.events)
	replay(t, ref, 1000)
	want := len(finalExceptions(t, ref.out))
	waitFor(t, "B's outputs to catch up", func() bool { return len(finalExceptions(t, outs...)) >= want })
}

// sharedSink stands for a destination both instances write to (a topic, a
// database): it counts how often each outbox row of each partition arrives.
type sharedSink struct {
	mu   *sync.Mutex
	got  map[[2]uint64]int // partition, seq → deliveries
	part uint64
}

func (s sharedSink) Name() string         { return "shared" }
func (s sharedSink) Stream() state.Stream { return state.StreamExceptions }
func (s sharedSink) Movable() bool        { return true }
func (s sharedSink) Open([]byte) error    { return nil }
func (s sharedSink) Close() error         { return nil }
func (s sharedSink) Write(_ context.Context, rows []state.Row) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rows {
		s.got[[2]uint64{s.part, r.Seq}]++
	}
	return nil, nil
}

// TestProcessorStageTakeoverMovesCursors: a sink whose destination is shared
// resumes on the new owner near where the old one stopped, not from the start.
func TestProcessorStageTakeoverMovesCursors(t *testing.T) {
	cluster, fx := newLedger(t, streamed)
	defer cluster.Close()
	var mu sync.Mutex
	got := map[[2]uint64]int{}
	shared := func(p int) sinks.Sink { return sharedSink{mu: &mu, got: got, part: uint64(p)} }
	a, stopA := fx.startInstance(t, "a", fx.outsFor("a-"), "changelog", withSink(shared))
	waitFor(t, "half the records", func() bool { return a.Counts().Processed >= fx.records/2 })
	stopA()
	mu.Lock()
	byA := len(got)
	mu.Unlock()
	b, stopB := fx.startInstance(t, "b", fx.outsFor("b-"), "changelog", withSink(shared))
	waitFor(t, "the rest on B", func() bool { return a.Counts().Processed+b.Counts().Processed >= fx.records })
	stopB()
	mu.Lock()
	defer mu.Unlock()
	twice := 0
	for _, n := range got {
		if n > 1 {
			twice++
		}
	}
	t.Logf("A delivered %d rows; %d rows in all, %d of them twice", byA, len(got), twice)
	if byA == 0 || twice > byA/10 {
		t.Errorf("B delivered %d of A's %d rows again: the cursors did not move with the partitions", twice, byA)
	}
}

// TestProcessorStageSplit: two instances in one group split the partitions;
// when A stops, B takes A's partitions over (state from the changelog) and
// B's outputs end as a single instance's would.
func TestProcessorStageSplit(t *testing.T) {
	cluster, fx, produce := newLedgerLater(t, streamed)
	defer cluster.Close()
	outs := fx.outsFor
	a, stopA := fx.startInstance(t, "a", outs("a-"), "changelog")
	b, stopB := fx.startInstance(t, "b", outs("b-"), "changelog")
	waitFor(t, "the partitions split between A and B", func() bool { return a.Assigned() > 0 && b.Assigned() > 0 && a.Assigned()+b.Assigned() == 4 })
	produce()
	waitFor(t, "both instances at work", func() bool { return a.Counts().Processed > 0 && b.Counts().Processed > 0 })
	waitFor(t, "half the records", func() bool { return a.Counts().Processed+b.Counts().Processed >= fx.records/2 })
	stopA()
	first := a.Counts().Processed
	fx.waitForTakeover(t, b, first, outs("b-"))
	stopB()
	t.Logf("A processed %d, B %d of %d", first, b.Counts().Processed, fx.records)
	if total := first + b.Counts().Processed; total != fx.records {
		t.Errorf("A and B processed %d records, want %d (each once)", total, fx.records)
	}
	compareWithReplay(t, fx, finalExceptions(t, outs("b-")...))
}

func TestProcessorStageRefusesSmallChangelog(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "ledger"), kfake.SeedTopics(2, "changelog"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	st, err := NewProcessorStage(ProcessorStageConfig{Brokers: cluster.ListenAddrs(), LedgerTopic: "ledger", DataDir: t.TempDir(),
		Rules: defaultRules(t), ChangelogTopic: "changelog", Sinks: func(int) ([]sinks.Sink, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "has 2 partitions, the ledger ledger 4") {
		t.Errorf("got %v", err)
	}
}

// TestProcessorStageRestoresFromSnapshot: instance A writes snapshots into
// the changelog; of it only what follows the latest snapshot of each
// partition is kept (as if retention had expired the rest); instance B, with
// an empty data dir, restores from that and ends equal to replay.
func TestProcessorStageRestoresFromSnapshot(t *testing.T) {
	cluster, fx := newLedger(t, streamed)
	defer cluster.Close()
	a, stopA := fx.startInstance(t, "a", fx.outsFor("a-"), "changelog",
		func(c *ProcessorStageConfig) { c.SnapshotBytes = 32 << 10 })
	snapshotted := func() bool {
		for p := 0; p < 4; p++ {
			conn, err := kafka.DialLeader(context.Background(), "tcp", fx.addr, "changelog", p)
			if err != nil {
				t.Fatal(err)
			}
			lo, hi, _ := conn.ReadOffsets()
			end, _, _, err := latestSnapshot(conn, lo, hi)
			conn.Close()
			if err != nil || end < 0 {
				return false
			}
		}
		return true
	}
	waitFor(t, "half the records and a snapshot of every partition", func() bool {
		return a.Counts().Processed >= fx.records/2 && snapshotted()
	})
	stopA()
	first := a.Counts().Processed

	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	kept, dropped := 0, 0
	for p := 0; p < 4; p++ {
		conn, err := kafka.DialLeader(context.Background(), "tcp", fx.addr, "changelog", p)
		if err != nil {
			t.Fatal(err)
		}
		lo, hi, _ := conn.ReadOffsets()
		end, chunks, _, err := latestSnapshot(conn, lo, hi)
		if err != nil || end < 0 {
			t.Fatalf("changelog partition %d: no complete snapshot (%v)", p, err)
		}
		var msgs []kafka.Message
		readRange(conn, end-int64(chunks), hi, func(m kafka.Message) error {
			msgs = append(msgs, kafka.Message{Value: m.Value, Headers: m.Headers})
			return nil
		})
		conn.Close()
		kept, dropped = kept+len(msgs), dropped+int(end-int64(chunks)-lo)
		w := &kafka.Writer{Addr: kafka.TCP(fx.addr), Topic: "changelog2", RequiredAcks: kafka.RequireAll, BatchSize: 1, Transport: tr,
			Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return p })}
		for _, m := range msgs {
			if err := w.WriteMessages(context.Background(), m); err != nil {
				t.Fatal(err)
			}
		}
		w.Close()
	}
	if dropped == 0 {
		t.Fatal("nothing came before the snapshots: the test tests nothing")
	}
	t.Logf("changelog2 keeps %d records from the latest snapshots on; %d earlier ones dropped", kept, dropped)
	b, stopB := fx.startInstance(t, "b", fx.outsFor("b-"), "changelog2")
	waitFor(t, "the rest on B", func() bool { return first+b.Counts().Processed >= fx.records })
	stopB()
	if total := first + b.Counts().Processed; total != fx.records {
		t.Errorf("A and B processed %d records, want %d (each once)", total, fx.records)
	}
	// A snapshot holds the outbox rows not yet pruned, not the history: A's
	// files and B's together are the whole of it (B's JSONL files, being
	// its own, repeat what A delivered after its last prune).
	got := finalExceptions(t, fx.outsFor("a-")...)
	for id, x := range finalExceptions(t, fx.outsFor("b-")...) {
		if x.Version > got[id].Version {
			got[id] = x
		}
	}
	compareWithReplay(t, fx, got)
}
