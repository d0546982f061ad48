package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/skuwatch/skuwatch/state"
)

// Sink delivers the rows of one outbox stream. Rows arrive in sequence order
// and may arrive again after a crash (from the last stored cursor), so a sink
// must be idempotent or restore itself from its checkpoint.
//
// A Sink is driven by one Drainer goroutine; it need not be safe for
// concurrent use.
type Sink interface {
	// Name identifies the sink's cursor in the store; unique per store.
	Name() string
	// Stream is the outbox stream the sink drains.
	Stream() state.Stream
	// Open prepares the sink to continue after the checkpoint that was stored
	// with its cursor (nil for a sink that has never written). It is called
	// again after a failed Write, so it must discard any partial state.
	Open(checkpoint []byte) error
	// Write delivers rows and returns the checkpoint to store with the cursor
	// after the last of them.
	Write(ctx context.Context, rows []state.Row) (checkpoint []byte, err error)
	// Close releases the sink.
	Close() error
}

// Movable is implemented by sinks whose cursor means the same on any
// instance: the destination is shared (a topic, a database) and the sink
// keeps no local checkpoint. Their cursors travel with a partition's state
// to the instance that takes the partition over; a file sink's do not.
type Movable interface {
	Sink
	Movable() bool
}

// Cursor is a sink's position in its stream.
type Cursor struct {
	Sink string
	Seq  uint64
}

// IsMovable reports whether s's cursor may move between instances.
func IsMovable(s Sink) bool {
	m, ok := s.(Movable)
	return ok && m.Movable()
}

// ErrPermanent marks a sink error that retrying will not fix.
var ErrPermanent = errors.New("sinks: permanent failure")

// Drainer moves rows from a store's outbox to a sink. It is for one
// goroutine: call Drain, or Run in its own goroutine.
type Drainer struct {
	store  *state.Store
	sink   Sink
	batch  int
	log    *slog.Logger
	cursor atomic.Uint64 // read by other goroutines (backpressure, metrics)
	opened bool
}

// DrainerOption configures a Drainer.
type DrainerOption func(*Drainer)

// WithBatchSize sets how many rows one Write receives. The default is 500.
func WithBatchSize(n int) DrainerOption { return func(d *Drainer) { d.batch = n } }

// WithLogger sets the logger. The default is slog.Default().
func WithLogger(l *slog.Logger) DrainerOption { return func(d *Drainer) { d.log = l } }

// NewDrainer builds a drainer of store's outbox into sink.
func NewDrainer(store *state.Store, sink Sink, opts ...DrainerOption) (*Drainer, error) {
	d := &Drainer{store: store, sink: sink, batch: 500, log: slog.Default()}
	for _, o := range opts {
		o(d)
	}
	if d.batch <= 0 {
		return nil, fmt.Errorf("sinks: batch size %d must be positive", d.batch)
	}
	return d, nil
}

// Sink returns the drained sink.
func (d *Drainer) Sink() Sink { return d.sink }

// Cursor is the last row the sink has acknowledged. Safe to call from any
// goroutine.
func (d *Drainer) Cursor() uint64 { return d.cursor.Load() }

func (d *Drainer) open() error {
	if d.opened {
		return nil
	}
	seq, cp, err := d.store.Cursor(d.sink.Name())
	if err != nil {
		return err
	}
	if err := d.sink.Open(cp); err != nil {
		return fmt.Errorf("sinks: open %s: %w", d.sink.Name(), err)
	}
	d.cursor.Store(seq)
	d.opened = true
	return nil
}

// Drain delivers every committed row after the cursor, advancing the cursor
// after each successful Write. It returns the number of rows delivered.
func (d *Drainer) Drain(ctx context.Context) (int, error) {
	if err := d.open(); err != nil {
		return 0, err
	}
	n := 0
	for {
		rows, err := d.store.ReadOutbox(d.sink.Stream(), d.cursor.Load(), d.batch)
		if err != nil || len(rows) == 0 {
			return n, err
		}
		cp, err := d.sink.Write(ctx, rows)
		if err != nil {
			// Start again from the stored cursor: the sink may hold part of
			// this write, and Open puts it back to the checkpoint.
			d.opened = false
			return n, fmt.Errorf("sinks: %s: write rows %d–%d: %w", d.sink.Name(), rows[0].Seq, rows[len(rows)-1].Seq, err)
		}
		last := rows[len(rows)-1].Seq
		if err := d.store.SetCursor(d.sink.Name(), last, cp); err != nil {
			return n, err
		}
		d.cursor.Store(last)
		n += len(rows)
	}
}

// Run drains whenever notify fires (and every poll interval), retrying a
// failing sink with exponential backoff until ctx ends; a write that made
// progress before it failed starts the backoff again from its first step,
// so intermittent failures slow delivery down only a little. A permanent
// error stops it.
func (d *Drainer) Run(ctx context.Context, notify <-chan struct{}, poll time.Duration) error {
	if poll <= 0 {
		poll = time.Second
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	bo := backoff.NewExponentialBackOff()
	for {
		n, err := d.Drain(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrPermanent) {
			return err
		}
		if err != nil {
			if n > 0 {
				bo.Reset()
			}
			wait := bo.NextBackOff()
			d.log.Warn("sink write failed; retrying", "sink", d.sink.Name(), "in", wait.Round(time.Millisecond), "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			continue
		}
		bo.Reset()
		select {
		case <-ctx.Done():
			return nil
		case <-notify:
		case <-t.C:
		}
	}
}
