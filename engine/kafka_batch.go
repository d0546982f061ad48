package engine

import (
	"context"
	"time"

	"github.com/segmentio/kafka-go"
)

// fillBatch appends to batch what the reader has already fetched, up to max
// records, waiting at most wait for more: a batch forms from what is there,
// it does not hold records back to grow.
func fillBatch(ctx context.Context, r *kafka.Reader, batch []kafka.Message, max int, wait time.Duration) []kafka.Message {
	fill, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for len(batch) < max {
		m, err := r.FetchMessage(fill)
		if err != nil {
			break
		}
		batch = append(batch, m)
	}
	return batch
}
