package engine

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"

	"github.com/skuwatch/skuwatch/state"
)

// keyFilter is a Bloom filter over every key of one store table: "no" is
// certain, so a lookup of a key the table has never held needs no Pebble
// read. It grows by rebuilding from the table (scan) when it fills up.
type keyFilter struct {
	f        *blockedBloom
	capacity uint
	count    uint
	scan     func(func([]byte)) error
}

func newKeyFilter(capacity uint, scan func(func([]byte)) error) (*keyFilter, error) {
	k := &keyFilter{capacity: capacity, scan: scan}
	return k, k.rebuild()
}

func (k *keyFilter) rebuild() error {
	for {
		f := newBlockedBloom(k.capacity)
		var n uint
		if err := k.scan(func(b []byte) { f.add(b); n++ }); err != nil {
			return fmt.Errorf("engine: rebuild key filter: %w", err)
		}
		if n <= k.capacity*3/4 {
			k.f, k.count = f, n
			return nil
		}
		k.capacity *= 2
	}
}

func (k *keyFilter) mayContain(b []byte) bool { return k.f.test(b) }

func (k *keyFilter) add(b []byte) {
	k.f.add(b)
	k.count++
}

// grow rebuilds a filter that holds more keys than it was sized for. Call it
// after a commit, when every added key is in the store.
func (k *keyFilter) grow() error {
	if k.count <= k.capacity {
		return nil
	}
	k.capacity *= 2
	return k.rebuild()
}

// dedup answers "was this event id applied?" without a Pebble read for the
// common case: the filter says "new" for certain, and only a filter hit is
// checked against the batch and the store.
type dedup struct {
	store *state.Store
	ids   *keyFilter
	// The ids marked in the uncommitted batch: their keys back to back in
	// keys, one mark each. A filter hit (about 1 % of new ids, and every
	// redelivery) scans them; a map would cost an insert and a copy of the
	// key for every event.
	keys  []byte
	marks []pendingMark
}

type pendingMark struct {
	day        uint32
	start, end int // of the key in dedup.keys
	at         int64
}

func newDedup(store *state.Store, capacity uint) (*dedup, error) {
	ids, err := newKeyFilter(capacity, store.EachApplied)
	if err != nil {
		return nil, err
	}
	return &dedup{store: store, ids: ids}, nil
}

// seen reports whether key (of the event at eventTime) was applied before;
// it does not mark it.
func (d *dedup) seen(key []byte, eventTime int64) (bool, error) {
	if !d.ids.mayContain(key) {
		return false, nil
	}
	for _, m := range d.marks {
		if bytes.Equal(d.keys[m.start:m.end], key) {
			return true, nil
		}
	}
	return d.store.Applied(eventTime, key)
}

// prune forgets the ids of events before day (state.AppliedDay) and
// rebuilds the filter from the ids left.
func (d *dedup) prune(day uint32) error {
	pruned, err := d.store.PruneApplied(day)
	if err != nil || !pruned {
		return err
	}
	return d.ids.rebuild()
}

// mark records key (of the event at eventTime) as applied in the batch
// being built; write puts the marks into the batch.
func (d *dedup) mark(key []byte, eventTime int64) {
	d.ids.add(key)
	start := len(d.keys)
	d.keys = append(d.keys, key...)
	d.marks = append(d.marks, pendingMark{day: state.AppliedDay(eventTime), start: start, end: len(d.keys), at: eventTime})
}

// write adds the batch's marks to b in the store's key order: Pebble inserts
// a batch's keys into its memtable one by one, and neighbours in key order
// find their place from the one before.
func (d *dedup) write(b *state.Batch) error {
	slices.SortFunc(d.marks, func(x, y pendingMark) int {
		return cmp.Or(cmp.Compare(x.day, y.day), bytes.Compare(d.keys[x.start:x.end], d.keys[y.start:y.end]))
	})
	for _, m := range d.marks {
		if err := b.MarkApplied(d.keys[m.start:m.end], m.at); err != nil {
			return err
		}
	}
	return nil
}

// committed is called after the batch holding the marks committed.
func (d *dedup) committed() error {
	d.forget()
	return d.ids.grow()
}

// discard forgets the marks of a batch that was not committed.
func (d *dedup) discard() error {
	d.forget()
	return d.ids.rebuild()
}

func (d *dedup) forget() {
	d.keys, d.marks = d.keys[:0], d.marks[:0]
}
