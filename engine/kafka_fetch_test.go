package engine

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// fetchCluster holds topic t (one partition) with records "v0".."v299",
// written in three produce batches of 100.
func fetchCluster(t *testing.T, brokers int) (*kfake.Cluster, []string) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(brokers), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	for b := range 3 {
		writeBatch(t, cluster.ListenAddrs(), b)
	}
	return cluster, cluster.ListenAddrs()
}

// writeBatch writes records "v(100b)".."v(100b+99)" to t in one batch.
func writeBatch(t *testing.T, addrs []string, b int) {
	t.Helper()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(addrs...), Topic: "t", RequiredAcks: kafka.RequireAll, BatchSize: 100,
		BatchTimeout: time.Millisecond, Transport: tr}
	defer w.Close()
	msgs := make([]kafka.Message, 100)
	for i := range msgs {
		msgs[i] = kafka.Message{Value: []byte("v" + strconv.Itoa(b*100+i))}
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

// readAll takes records from r until want have come (or a minute passed).
func readAll(t *testing.T, r *ledgerReader, want int) []fetched {
	t.Helper()
	var got []fetched
	deadline := time.Now().Add(time.Minute)
	for len(got) < want && time.Now().Before(deadline) {
		recs, err := r.take(context.Background(), 100*time.Millisecond, min(64, want-len(got)))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range recs {
			got = append(got, fetched{offset: f.offset, value: append([]byte(nil), f.value...)})
		}
	}
	return got
}

func checkRecords(t *testing.T, got []fetched, from, to int) {
	t.Helper()
	if len(got) != to-from {
		t.Fatalf("got %d records, want %d (offsets %d–%d)", len(got), to-from, from, to-1)
	}
	for i, f := range got {
		if want := int64(from + i); f.offset != want || string(f.value) != fmt.Sprintf("v%d", want) {
			t.Fatalf("record %d: offset %d value %q, want offset %d value v%d", i, f.offset, f.value, want, want)
		}
	}
}

// TestLedgerReader: from the first offset, and from the middle of a
// produce batch (the broker returns the batch from its start), every record
// once, in order, in takes of at most the limit.
func TestLedgerReader(t *testing.T) {
	cluster, brokers := fetchCluster(t, 1)
	defer cluster.Close()
	for _, c := range []struct {
		start int64
		from  int
	}{{kafka.FirstOffset, 0}, {150, 150}} {
		r := newLedgerReader(context.Background(), nil, brokers, "t", 0, c.start, slog.Default())
		checkRecords(t, readAll(t, r, 300-c.from), c.from, 300)
		if recs, err := r.take(context.Background(), 50*time.Millisecond, 64); err != nil || len(recs) != 0 {
			t.Errorf("past the end: %d records, %v; want none", len(recs), err)
		}
		r.close()
	}
	// A stop while the reader waits for records ends the take at once.
	ctx, cancel := context.WithCancel(context.Background())
	r := newLedgerReader(ctx, nil, brokers, "t", 0, 300, slog.Default())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if _, err := r.take(ctx, time.Hour, 64); err == nil {
		t.Error("a take during a stop returned no error")
	}
	r.close()
}

// TestLedgerReaderRetention: records deleted before they were read are
// skipped (with an error logged), and reading goes on from the first kept.
func TestLedgerReaderRetention(t *testing.T) {
	cluster, brokers := fetchCluster(t, 1)
	defer cluster.Close()
	if err := cluster.DeleteRecords("t", 0, 200); err != nil {
		t.Fatal(err)
	}
	r := newLedgerReader(context.Background(), nil, brokers, "t", 0, 120, slog.Default())
	defer r.close()
	checkRecords(t, readAll(t, r, 100), 200, 300)
}

// TestLedgerReaderLeaderMoves: the partition's leader moves to another broker
// between writes; the reader reconnects to the new leader and every record
// still comes once, in order.
func TestLedgerReaderLeaderMoves(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(2), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	writeBatch(t, brokers, 0)
	r := newLedgerReader(context.Background(), nil, brokers, "t", 0, kafka.FirstOffset, slog.Default())
	defer r.close()
	got := readAll(t, r, 100)
	other := int32(0)
	if cluster.LeaderFor("t", 0) == 0 {
		other = 1
	}
	if err := cluster.MoveTopicPartition("t", 0, other); err != nil {
		t.Fatal(err)
	}
	writeBatch(t, brokers, 1)
	writeBatch(t, brokers, 2)
	got = append(got, readAll(t, r, 200)...)
	checkRecords(t, got, 0, 300)
}
