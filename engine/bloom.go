package engine

import "hash/maphash"

// blockedBloom is a Bloom filter whose bits for one key all lie in one
// 512-bit block (one cache line): a lookup costs one cache miss where a
// classic filter of the same size costs one per hash function. The dedup
// filter is tested for every event and is far larger than the CPU caches,
// so those misses were most of its cost (600 → 170 ns for a test and an
// add over six 1M-id filters). With 10 bits per key and 7 bits set per key
// the false-positive rate is about 1 %, as a classic filter's.
type blockedBloom struct {
	seed   maphash.Seed
	blocks [][8]uint64
}

const (
	bloomBitsPerKey = 10
	bloomBitsSet    = 7
)

// newBlockedBloom sizes a filter for n keys.
func newBlockedBloom(n uint) *blockedBloom {
	blocks := max((n*bloomBitsPerKey+511)/512, 1)
	return &blockedBloom{seed: maphash.MakeSeed(), blocks: make([][8]uint64, blocks)}
}

// locate hashes key once: the high half picks the block, the low half
// seeds the bit positions within it.
func (f *blockedBloom) locate(key []byte) (*[8]uint64, uint32) {
	h := maphash.Bytes(f.seed, key)
	return &f.blocks[(h>>32)*uint64(len(f.blocks))>>32], uint32(h)
}

// next steps the bit position generator (a multiplicative congruential
// sequence) and returns a bit index within a block, 0–511.
func next(y *uint32) uint32 {
	*y = *y*0x9e3779b1 + 0x7f4a7c15
	return *y >> 23
}

func (f *blockedBloom) add(key []byte) {
	blk, y := f.locate(key)
	for range bloomBitsSet {
		b := next(&y)
		blk[b>>6] |= 1 << (b & 63)
	}
}

func (f *blockedBloom) test(key []byte) bool {
	blk, y := f.locate(key)
	for range bloomBitsSet {
		b := next(&y)
		if blk[b>>6]&(1<<(b&63)) == 0 {
			return false
		}
	}
	return true
}
