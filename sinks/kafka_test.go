package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/skuwatch/skuwatch/state"
)

// TestKafkaSink publishes exception versions through a real Kafka wire
// protocol (kfake) and reads them back: keyed by exception_id, one key on one
// partition in version order, with version/rule/change headers.
func TestKafkaSink(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "exceptions"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	st, err := state.Open(filepath.Join(t.TempDir(), "db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b := st.NewBatch()
	seq := uint64(0)
	for v := 1; v <= 3; v++ {
		for i := 0; i < 10; i++ {
			seq++
			row, _ := json.Marshal(map[string]any{"exception_id": fmt.Sprintf("x%d", i), "rule": "negative_stock", "change": "updated", "version": v})
			b.Append(state.StreamExceptions, seq, row)
		}
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	sink, err := NewKafka("kafka", cluster.ListenAddrs(), "exceptions")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	d, _ := NewDrainer(st, sink, WithBatchSize(7))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if n, err := d.Drain(ctx); err != nil || n != 30 {
		t.Fatalf("drain: %d %v", n, err)
	}
	partOf := map[string]int{}
	lastVersion := map[string]int{}
	got := 0
	for p := 0; p < 3; p++ {
		conn, err := kafka.DialLeader(ctx, "tcp", cluster.ListenAddrs()[0], "exceptions", p)
		if err != nil {
			t.Fatal(err)
		}
		last, _ := conn.ReadLastOffset()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		batch := conn.ReadBatch(1, 1<<20)
		for i := int64(0); i < last; i++ {
			m, err := batch.ReadMessage()
			if err != nil {
				t.Fatalf("partition %d: %v", p, err)
			}
			got++
			var x struct {
				ID      string `json:"exception_id"`
				Version int    `json:"version"`
			}
			json.Unmarshal(m.Value, &x)
			if string(m.Key) != x.ID {
				t.Errorf("key %q for exception %q", m.Key, x.ID)
			}
			if q, ok := partOf[x.ID]; ok && q != p {
				t.Errorf("%s on partitions %d and %d", x.ID, q, p)
			}
			partOf[x.ID] = p
			if x.Version <= lastVersion[x.ID] {
				t.Errorf("%s: version %d after %d", x.ID, x.Version, lastVersion[x.ID])
			}
			lastVersion[x.ID] = x.Version
			h := map[string]string{}
			for _, hd := range m.Headers {
				h[hd.Key] = string(hd.Value)
			}
			if h["version"] != fmt.Sprint(x.Version) || h["rule"] != "negative_stock" || h["change"] != "updated" {
				t.Errorf("headers %v", h)
			}
		}
		batch.Close()
		conn.Close()
	}
	if got != 30 {
		t.Errorf("read %d messages, want 30", got)
	}
	if d.Cursor() != 30 {
		t.Errorf("cursor %d", d.Cursor())
	}
}

// TestKafkaSinkDown: with no broker the write fails, the cursor stays, and
// nothing is lost for the retry.
func TestKafkaSinkDown(t *testing.T) {
	st, err := state.Open(filepath.Join(t.TempDir(), "db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b := st.NewBatch()
	b.Append(state.StreamExceptions, 1, []byte(`{"exception_id":"x","version":1}`))
	b.Commit(true)
	sink, _ := NewKafka("kafka", []string{"127.0.0.1:1"}, "exceptions", WithWriteTimeout(time.Second))
	defer sink.Close()
	d, _ := NewDrainer(st, sink)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := d.Drain(ctx); err == nil {
		t.Fatal("write to a missing broker succeeded")
	}
	if seq, _, _ := st.Cursor("kafka"); seq != 0 || d.Cursor() != 0 {
		t.Errorf("cursor moved to %d after a failed write", seq)
	}
}
