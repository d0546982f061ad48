package engine

import (
	"fmt"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/skuwatch/skuwatch/state"
)

// dedup answers "was this event id applied?" without a Pebble read for the
// common case: a Bloom filter over every applied id says "new" for certain,
// and only a filter hit is checked against the batch and the store. The
// filter is rebuilt larger from the store when it fills up.
type dedup struct {
	store    *state.Store
	filter   *bloom.BloomFilter
	capacity uint
	count    uint
	pending  map[string]struct{} // ids marked in the uncommitted batch
}

const dedupFalsePositive = 0.01

func newDedup(store *state.Store, capacity uint) (*dedup, error) {
	d := &dedup{store: store, capacity: capacity, pending: map[string]struct{}{}}
	return d, d.rebuild()
}

func (d *dedup) rebuild() error {
	for {
		f := bloom.NewWithEstimates(d.capacity, dedupFalsePositive)
		var n uint
		if err := d.store.EachApplied(func(k []byte) { f.Add(k); n++ }); err != nil {
			return fmt.Errorf("engine: rebuild dedup filter: %w", err)
		}
		if n <= d.capacity*3/4 {
			d.filter, d.count = f, n
			return nil
		}
		d.capacity *= 2
	}
}

// seen reports whether key was applied before; it does not mark it.
func (d *dedup) seen(key []byte, source, id string, kind byte) (bool, error) {
	if !d.filter.Test(key) {
		return false, nil
	}
	if _, ok := d.pending[string(key)]; ok {
		return true, nil
	}
	return d.store.Applied(source, id, kind)
}

func (d *dedup) mark(key []byte) {
	d.filter.Add(key)
	d.pending[string(key)] = struct{}{}
	d.count++
}

// committed is called after the batch holding the marks committed.
func (d *dedup) committed() error {
	clear(d.pending)
	if d.count > d.capacity {
		d.capacity *= 2
		return d.rebuild()
	}
	return nil
}

// discard forgets the marks of a batch that was not committed.
func (d *dedup) discard() error {
	clear(d.pending)
	return d.rebuild()
}
