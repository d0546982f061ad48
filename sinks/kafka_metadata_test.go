package sinks

import (
	"context"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"
	"github.com/twmb/franz-go/pkg/kfake"
)

// countingTransport counts the metadata requests that reach the transport.
type countingTransport struct {
	kafka.RoundTripper
	metadata atomic.Int64
}

func (c *countingTransport) RoundTrip(ctx context.Context, addr net.Addr, req kafka.Request) (kafka.Response, error) {
	if _, ok := req.(*metadataAPI.Request); ok {
		c.metadata.Add(1)
	}
	return c.RoundTripper.RoundTrip(ctx, addr, req)
}

// TestCachedMetadata: a Writer's once-per-message partition lookups reach
// the broker once per ttl, the records still go to murmur2's partitions,
// and a topic that does not exist is asked for again on every call.
func TestCachedMetadata(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	counted := &countingTransport{RoundTripper: tr}
	w := &kafka.Writer{Addr: kafka.TCP(cluster.ListenAddrs()...), Topic: "t", Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchSize: 500, BatchTimeout: time.Millisecond, Transport: CachedMetadata(counted, time.Minute)}
	defer w.Close()
	msgs := make([]kafka.Message, 500)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte("k" + strconv.Itoa(i)), Value: []byte("v")}
	}
	for range 3 {
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
	}
	if n := counted.metadata.Load(); n != 1 {
		t.Errorf("1,500 messages asked the broker for metadata %d times, want once", n)
	}
	// Past the ttl the next check of the clock asks again.
	short := CachedMetadata(counted, time.Nanosecond)
	for range 130 {
		if _, err := short.RoundTrip(context.Background(), w.Addr, &metadataAPI.Request{TopicNames: []string{"t"}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := counted.metadata.Load() - 1; n != 3 {
		t.Errorf("130 lookups with an expired answer asked the broker %d times, want 3 (the first, then at every 64th use)", n)
	}
	var bal kafka.Murmur2Balancer
	for p := range 4 {
		conn, err := kafka.DialLeader(context.Background(), "tcp", cluster.ListenAddrs()[0], "t", p)
		if err != nil {
			t.Fatal(err)
		}
		batch := conn.ReadBatch(1, 1<<20)
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			if q := bal.Balance(kafka.Message{Key: m.Key}, 0, 1, 2, 3); q != p {
				t.Errorf("key %s on partition %d, murmur2 says %d", m.Key, p, q)
			}
		}
		batch.Close()
		conn.Close()
	}

	missing := &kafka.Writer{Addr: kafka.TCP(cluster.ListenAddrs()...), Topic: "nope", Balancer: &kafka.Murmur2Balancer{},
		MaxAttempts: 1, Transport: CachedMetadata(counted, time.Minute)}
	defer missing.Close()
	before := counted.metadata.Load()
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := missing.WriteMessages(ctx, kafka.Message{Value: []byte("v")}); err == nil {
			t.Error("write to a missing topic succeeded")
		}
		cancel()
	}
	if n := counted.metadata.Load() - before; n < 2 {
		t.Errorf("a missing topic was looked up %d times in two writes: its error was cached", n)
	}
}
