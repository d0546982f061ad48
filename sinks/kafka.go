package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/skuwatch/skuwatch/state"
)

// Kafka publishes exception changes to a topic, keyed by exception_id, so
// every version of one exception lands on one partition in order. Delivery
// is at least once: a crash after a write and before its cursor is stored
// sends those rows again, so consumers keep the highest (exception_id,
// version) they have seen — the key and the "version" header say it without
// parsing the value.
type Kafka struct {
	name string
	w    *kafka.Writer
	own  *kafka.Transport // closed with the sink; nil when the caller gave one
	msgs []kafka.Message
}

// KafkaOption configures a Kafka sink.
type KafkaOption func(*kafka.Writer)

// WithTransport sets the transport (TLS, SASL, timeouts). The default is
// kafka-go's default transport.
func WithTransport(t *kafka.Transport) KafkaOption {
	return func(w *kafka.Writer) { w.Transport = t }
}

// WithWriteTimeout bounds one write. The default is 10s.
func WithWriteTimeout(d time.Duration) KafkaOption {
	return func(w *kafka.Writer) { w.WriteTimeout = d }
}

// NewKafka makes a sink that publishes stream's rows to topic on brokers;
// name is its cursor name.
func NewKafka(name string, brokers []string, topic string, opts ...KafkaOption) (*Kafka, error) {
	if len(brokers) == 0 || topic == "" {
		return nil, fmt.Errorf("sinks: kafka sink %s needs brokers and a topic", name)
	}
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     &kafka.Murmur2Balancer{}, // the Java client's partitioner: any producer agrees
		RequiredAcks: kafka.RequireAll,
		BatchBytes:   64 << 20,
		BatchTimeout: time.Millisecond,
		WriteTimeout: 10 * time.Second,
		MaxAttempts:  1, // the drainer retries with backoff from its cursor
	}
	for _, o := range opts {
		o(w)
	}
	k := &Kafka{name: name, w: w}
	if w.Transport == nil {
		k.own = &kafka.Transport{}
		w.Transport = k.own
	}
	w.Transport = CachedMetadata(w.Transport, time.Second)
	return k, nil
}

// Name implements Sink.
func (k *Kafka) Name() string { return k.name }

// Stream implements Sink.
func (k *Kafka) Stream() state.Stream { return state.StreamExceptions }

// Movable implements Movable: the topic is the same from any instance.
func (k *Kafka) Movable() bool { return true }

// Open implements Sink; the sink keeps no checkpoint of its own.
func (k *Kafka) Open([]byte) error { return nil }

// Write implements Sink: it returns once every row is acknowledged by all
// in-sync replicas.
func (k *Kafka) Write(ctx context.Context, rows []state.Row) ([]byte, error) {
	k.msgs = k.msgs[:0]
	for _, r := range rows {
		var h struct {
			ID      string `json:"exception_id"`
			Rule    string `json:"rule"`
			Change  string `json:"change"`
			Version int    `json:"version"`
		}
		if err := json.Unmarshal(r.Value, &h); err != nil || h.ID == "" {
			return nil, fmt.Errorf("%w: outbox row %d is not an exception: %v", ErrPermanent, r.Seq, err)
		}
		k.msgs = append(k.msgs, kafka.Message{Key: []byte(h.ID), Value: r.Value, Headers: []kafka.Header{
			{Key: "version", Value: []byte(strconv.Itoa(h.Version))},
			{Key: "rule", Value: []byte(h.Rule)},
			{Key: "change", Value: []byte(h.Change)},
		}})
	}
	// One batch a partition, so a retry cannot reorder a partition; sized
	// to this write (kafka-go allocates batches of BatchSize capacity).
	k.w.BatchSize = len(k.msgs)
	if err := k.w.WriteMessages(ctx, k.msgs...); err != nil {
		var we kafka.WriteErrors
		if errors.As(err, &we) {
			return nil, fmt.Errorf("kafka: %d of %d messages failed: %w", we.Count(), len(k.msgs), err)
		}
		return nil, fmt.Errorf("kafka: %w", err)
	}
	return nil, nil
}

// Close implements Sink: it flushes and closes the writer.
func (k *Kafka) Close() error {
	err := k.w.Close()
	if k.own != nil {
		k.own.CloseIdleConnections()
	}
	return err
}
