package engine

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// offsetCommitter commits the latest next offset of every partition of one
// group generation together, every interval: one request at a time on the
// group coordinator's connection (kafka-go's connection spins a waiting
// caller while another caller's response is ahead of its own). The stages
// set an offset once what precedes it is safe: the processor after its
// store synced, the intake after its records were acknowledged.
type offsetCommitter struct {
	mu      sync.Mutex
	pending map[string]map[int]int64 // topic → partition → next offset, not yet committed
	onFail  string                   // what a failed commit means, for the log
}

func newOffsetCommitter(onFail string) *offsetCommitter {
	return &offsetCommitter{pending: map[string]map[int]int64{}, onFail: onFail}
}

// set records a partition's next offset.
func (c *offsetCommitter) set(topic string, partition int, next int64) {
	c.mu.Lock()
	if c.pending[topic] == nil {
		c.pending[topic] = map[int]int64{}
	}
	c.pending[topic][partition] = next
	c.mu.Unlock()
}

func (c *offsetCommitter) take() map[string]map[int]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		return nil
	}
	p := c.pending
	c.pending = map[string]map[int]int64{}
	return p
}

// run commits every interval until ctx ends, then once more after the
// setters (parts) stopped, so a clean stop leaves the group offsets at the
// last ones set. A failed commit is only logged: the next commit carries
// newer offsets.
func (c *offsetCommitter) run(ctx context.Context, gen *kafka.Generation, parts *sync.WaitGroup, every time.Duration, log *slog.Logger) {
	commit := func() {
		if p := c.take(); p != nil {
			if err := gen.CommitOffsets(p); err != nil {
				log.Warn("group offset commit failed; "+c.onFail, "err", err)
			}
		}
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			parts.Wait()
			commit()
			return
		case <-t.C:
			commit()
		}
	}
}

// heartbeat is a third of the session timeout (kafka-go's default of 3s
// would let a short session expire between heartbeats).
func heartbeat(session time.Duration) time.Duration {
	if session <= 0 {
		return 0
	}
	return session / 3
}
