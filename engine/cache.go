package engine

import (
	"slices"
	"strings"

	"github.com/skuwatch/skuwatch/state"
)

// entryCache is the write-back cache of ledger rows: the working set stays in
// memory, dirty rows are written in the next batch, and clean rows beyond the
// capacity are evicted least recently used first. It belongs to the
// processor's goroutine.
type entryCache struct {
	cap   int
	m     map[string]*cacheItem
	head  cacheItem // sentinel: head.next is the most recently used
	dirty []*cacheItem
}

type cacheItem struct {
	key        string
	e          *state.Entry
	dirty      bool
	prev, next *cacheItem
}

func newEntryCache(capacity int) *entryCache {
	c := &entryCache{cap: capacity, m: make(map[string]*cacheItem)}
	c.head.prev, c.head.next = &c.head, &c.head
	return c
}

func (c *entryCache) get(key []byte) *cacheItem {
	it := c.m[string(key)]
	if it != nil && c.head.next != it {
		c.unlink(it)
		c.pushFront(it)
	}
	return it
}

func (c *entryCache) put(key string, e *state.Entry) *cacheItem {
	it := &cacheItem{key: key, e: e}
	c.m[key] = it
	c.pushFront(it)
	return it
}

func (c *entryCache) markDirty(it *cacheItem) {
	if !it.dirty {
		it.dirty = true
		c.dirty = append(c.dirty, it)
	}
}

// flush writes every dirty row into b, in key order (see dedup.write); the
// rows are clean once b commits.
func (c *entryCache) flush(b *state.Batch, scratch []byte) ([]byte, error) {
	slices.SortFunc(c.dirty, func(x, y *cacheItem) int { return strings.Compare(x.key, y.key) })
	var err error
	for _, it := range c.dirty {
		if scratch, err = b.PutEntry(it.key, it.e, scratch); err != nil {
			return scratch, err
		}
	}
	return scratch, nil
}

// committed marks the flushed rows clean and evicts down to capacity.
func (c *entryCache) committed() {
	for _, it := range c.dirty {
		it.dirty = false
	}
	c.dirty = c.dirty[:0]
	for len(c.m) > c.cap {
		it := c.head.prev
		if it == &c.head || it.dirty {
			return
		}
		c.unlink(it)
		delete(c.m, it.key)
	}
}

// discard forgets every row: after a failed batch the cache may hold changes
// that were never written.
func (c *entryCache) discard() {
	clear(c.m)
	c.head.prev, c.head.next = &c.head, &c.head
	c.dirty = c.dirty[:0]
}

func (c *entryCache) unlink(it *cacheItem) {
	it.prev.next, it.next.prev = it.next, it.prev
}

func (c *entryCache) pushFront(it *cacheItem) {
	it.prev, it.next = &c.head, c.head.next
	c.head.next.prev = it
	c.head.next = it
}
