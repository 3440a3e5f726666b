package fsm

import (
	"math/bits"
	"unsafe"
)

// longChunk is the size of a chunk of a long-key slab.
const longChunk = 64 << 10

// longBig is the length above which a key is kept in a slice of its own
// rather than in a slab: a slab chunk holds at least two keys.
const longBig = longChunk / 2

// longKeys holds the keys longer than inlineKey, each in a slot that its
// record names (record.longSlot) in the slab of its size class, which the
// key's length (record.longLen) gives. A slab is chunks of bytes cut into
// slots of one size: reading a key is an index and a string over its
// bytes, and the chunks hold no pointers, so the collector neither scans
// the keys nor counts them as objects (with a million keys of 28 bytes a
// full collection took 18 ms when they were Go strings, and takes 1 ms:
// BenchmarkGCWithState). Chunks never move, so the store never copies the
// keys as it grows. A key longer than longBig has a slice of its own.
type longKeys struct {
	slabs map[int]*longSlab // by slot size
	big   longSlab          // keys longer than longBig: one chunk each
	n     int               // keys held
}

// longSlab is the slots of one size: slot i is at byte (i % per) * size
// of chunk i / per, where per is how many a chunk holds; in longKeys.big,
// whose per is 0, slot i is chunk i, a key's own slice.
type longSlab struct {
	size, per int
	chunks    [][]byte
	next      uint32   // slots below next have been handed out
	free      []uint32 // slots given back, reused first
}

// longSlotSize is the slot size of a key of n bytes (inlineKey < n <=
// longBig): a multiple of 8 up to 64 bytes, then four sizes between two
// powers of two, so that at most a fifth of a slot is unused.
func longSlotSize(n int) int {
	if n <= 64 {
		return (n + 7) &^ 7
	}
	step := 1 << (bits.Len(uint(n-1)) - 3)
	return (n + step - 1) &^ (step - 1)
}

// slab returns the slab keys of n bytes live in, nil if there is none
// yet. It only reads, so readers holding the FSM's read lock may call it.
func (l *longKeys) slab(n int) *longSlab {
	if n > longBig {
		return &l.big
	}
	return l.slabs[longSlotSize(n)]
}

// slabForAdd is slab, making the slab if there is none yet.
func (l *longKeys) slabForAdd(n int) *longSlab {
	if s := l.slab(n); s != nil {
		return s
	}
	if l.slabs == nil {
		l.slabs = make(map[int]*longSlab)
	}
	size := longSlotSize(n)
	s := &longSlab{size: size, per: longChunk / size}
	l.slabs[size] = s
	return s
}

// bytes returns the bytes of slot in s, n of them used.
func (s *longSlab) bytes(slot uint32, n int) []byte {
	if s.per == 0 {
		return s.chunks[slot][:n]
	}
	off := int(slot%uint32(s.per)) * s.size
	return s.chunks[slot/uint32(s.per)][off : off+n]
}

// get returns the key of n bytes in slot: a view of the slab, valid until
// the slot is given back (remove); clone it before keeping it.
func (l *longKeys) get(slot uint32, n int) string {
	b := l.slab(n).bytes(slot, n)
	return unsafe.String(unsafe.SliceData(b), n)
}

// add keeps key and returns its slot.
func (l *longKeys) add(key string) uint32 {
	s := l.slabForAdd(len(key))
	var slot uint32
	if n := len(s.free); n > 0 {
		slot = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		slot = s.next
		s.next++
		if s.per == 0 {
			s.chunks = append(s.chunks, nil)
		} else if int(slot)/s.per == len(s.chunks) {
			s.chunks = append(s.chunks, make([]byte, s.per*s.size))
		}
	}
	if s.per == 0 {
		s.chunks[slot] = []byte(key)
	} else {
		copy(s.bytes(slot, len(key)), key)
	}
	l.n++
	return slot
}

// remove gives back the slot of a key of n bytes.
func (l *longKeys) remove(slot uint32, n int) {
	s := l.slab(n)
	if s.per == 0 {
		s.chunks[slot] = nil
	}
	s.free = append(s.free, slot)
	l.n--
}

// slots reports how many slots the slabs have handed out and how many of
// them are free (tests).
func (l *longKeys) slots() (handedOut, free int) {
	for _, s := range l.slabs {
		handedOut += int(s.next)
		free += len(s.free)
	}
	return handedOut + int(l.big.next), free + len(l.big.free)
}
