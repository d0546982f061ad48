package engine

import (
	"strconv"
	"testing"
)

// TestBlockedBloom: no false negatives, and about 1 % false positives at
// the capacity the filter was sized for.
func TestBlockedBloom(t *testing.T) {
	const n = 200_000
	f := newBlockedBloom(n)
	for i := range n {
		f.add([]byte("pos\x00in-" + strconv.Itoa(i)))
	}
	for i := range n {
		if !f.test([]byte("pos\x00in-" + strconv.Itoa(i))) {
			t.Fatalf("key %d added but not found", i)
		}
	}
	fp := 0
	for i := range n {
		if f.test([]byte("pos\x00out-" + strconv.Itoa(i))) {
			fp++
		}
	}
	if rate := float64(fp) / n; rate > 0.015 {
		t.Errorf("false-positive rate %.4f at capacity, want about 0.01", rate)
	}
	if small := newBlockedBloom(0); small.test([]byte("x")) {
		t.Error("an empty filter holds a key")
	}
}
