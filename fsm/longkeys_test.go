package fsm

import (
	"strconv"
	"strings"
	"testing"
)

// TestLongSlotSize checks the slab sizes: every key fits its slot, a slot
// wastes less than 8 bytes up to 64 and less than a fifth above, sizes are
// multiples of 8, and a chunk holds at least two slots.
func TestLongSlotSize(t *testing.T) {
	for n := inlineKey + 1; n <= longBig; n++ {
		size := longSlotSize(n)
		switch {
		case size < n:
			t.Fatalf("key of %d bytes: slot of %d", n, size)
		case size%8 != 0:
			t.Fatalf("key of %d bytes: slot of %d, not a multiple of 8", n, size)
		case n <= 64 && size-n >= 8, n > 64 && (size-n)*5 >= size:
			t.Fatalf("key of %d bytes: slot of %d wastes too much", n, size)
		case longChunk/size < 2:
			t.Fatalf("key of %d bytes: slot of %d, %d a chunk", n, size, longChunk/size)
		}
	}
	for _, c := range []struct{ n, size int }{{20, 24}, {24, 24}, {25, 32}, {64, 64}, {65, 80}, {128, 128}, {129, 160}, {1000, 1024}, {longBig, longBig}} {
		if got := longSlotSize(c.n); got != c.size {
			t.Errorf("longSlotSize(%d) = %d, want %d", c.n, got, c.size)
		}
	}
}

// TestLongKeys adds, reads, removes and re-adds keys of many lengths, in
// slabs and too long for one, and checks that every key held reads back
// intact whatever happened to its neighbours, and that slots are reused.
func TestLongKeys(t *testing.T) {
	lengths := []int{20, 24, 25, 63, 64, 65, 80, 81, 200, 1000, 4097, longBig, longBig + 1, 100_000}
	var l longKeys
	type held struct {
		key  string
		slot uint32
	}
	var keys []held
	for round := range 3 {
		for _, n := range lengths {
			for i := range 5 {
				k := strconv.Itoa(round*1000+i) + ":"
				k += strings.Repeat(string(rune('a'+i)), n-len(k))
				keys = append(keys, held{k, l.add(k)})
			}
		}
		for _, h := range keys {
			if got := l.get(h.slot, len(h.key)); got != h.key {
				t.Fatalf("round %d: key of %d bytes in slot %d reads %.40q..., want %.40q...", round, len(h.key), h.slot, got, h.key)
			}
		}
		// Give back every other key; the next round reuses their slots.
		kept := keys[:0]
		for i, h := range keys {
			if i%2 == 0 {
				l.remove(h.slot, len(h.key))
			} else {
				kept = append(kept, h)
			}
		}
		keys = kept
		if l.n != len(keys) {
			t.Fatalf("round %d: %d keys held, want %d", round, l.n, len(keys))
		}
		if out, free := l.slots(); out != free+l.n {
			t.Fatalf("round %d: %d slots handed out, %d free, %d held", round, out, free, l.n)
		}
	}
	if out, _ := l.slots(); out > 2*len(lengths)*5 {
		t.Fatalf("%d slots handed out for at most %d keys at once: slots are not reused", out, 2*len(lengths)*5)
	}
}
