package engine

import (
	"sync/atomic"
	"time"
)

// Clock is the engine's notion of now: event time in replay, wall time live.
type Clock interface {
	Now() time.Time
}

// EventClock is the replay clock: the watermark, the latest event time seen.
// It never goes back, so a late event does not rewind timers. Safe for
// concurrent use.
type EventClock struct {
	wm atomic.Int64
}

// NewEventClock starts at a stored watermark (unix ns; 0 for a new replay).
func NewEventClock(watermark int64) *EventClock {
	c := &EventClock{}
	c.wm.Store(watermark)
	return c
}

// Observe advances the watermark to t if t is later.
func (c *EventClock) Observe(t time.Time) {
	n := t.UnixNano()
	for {
		old := c.wm.Load()
		if n <= old || c.wm.CompareAndSwap(old, n) {
			return
		}
	}
}

// Now is the watermark.
func (c *EventClock) Now() time.Time { return time.Unix(0, c.wm.Load()).UTC() }

// Watermark is the watermark in unix ns.
func (c *EventClock) Watermark() int64 { return c.wm.Load() }

// WallClock is the live clock.
type WallClock struct{}

// Now is time.Now in UTC.
func (WallClock) Now() time.Time { return time.Now().UTC() }
