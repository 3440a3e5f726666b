package fsm

import (
	"hash/maphash"
	"math/rand"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// checkStore checks every invariant of s against want, the keys it must
// hold: each is found by get with its state, the table's counts are
// right, every id is in exactly one slot with its key's tag, the heap is a heap whose
// records know their positions, and the index lists every key once in
// (hash, key) order.
func checkStore(t *testing.T, s *store, want map[string]keyState) {
	t.Helper()
	if s.len() != len(want) || len(s.heap) != len(want) || s.index.Len() != len(want) {
		t.Fatalf("len %d heap %d index %d, want %d", s.len(), len(s.heap), s.index.Len(), len(want))
	}
	long, wide := 0, 0
	for k, w := range want {
		id, r := s.get(k)
		if r == nil {
			t.Fatalf("key %q not found", k)
		}
		if got := s.state(id); got != w {
			t.Fatalf("key %q: state %+v, want %+v", k, got, w)
		}
		if th := maphash.String(tableSeed, k); s.tableHash(id) != th || s.keyLen(id, r) != len(k) {
			t.Fatalf("key %q: table hash %#x length %d, want %#x %d", k, s.tableHash(id), s.keyLen(id, r), th, len(k))
		}
		for _, other := range []string{k + "x", k[:len(k)-1], "x" + k[1:]} {
			if _, ok := want[other]; !ok {
				if _, r := s.get(other); r != nil {
					t.Fatalf("absent key %q found", other)
				}
			}
		}
		if len(k) > inlineKey {
			long++
		}
		if !narrow(w.interval, w.span) {
			wide++
		}
	}
	if s.long.n != long || len(s.wide) != wide {
		t.Fatalf("%d long keys and %d wide spans kept, want %d and %d", s.long.n, len(s.wide), long, wide)
	}
	if out, free := s.long.slots(); free+s.long.n != out {
		t.Fatalf("%d long key slots handed out, %d free and %d held", out, free, s.long.n)
	}
	seen := map[uint32]bool{}
	total := 0
	for i := range s.segs {
		n := 0
		for _, v := range s.segs[i].slots {
			if v == 0 {
				continue
			}
			id := v & idMask
			if v != slotOf(id, maphash.String(tableSeed, s.keyOf(id))) {
				t.Fatalf("segment %d: slot %#x holds id %d with the wrong tag", i, v, id)
			}
			if seen[id] {
				t.Fatalf("id %d in two slots", id)
			}
			seen[id] = true
			n++
		}
		if n != s.segs[i].n || n*4 > len(s.segs[i].slots)*3 {
			t.Fatalf("segment %d: %d ids, counted %d, %d slots", i, n, s.segs[i].n, len(s.segs[i].slots))
		}
		total += n
	}
	if total != len(want) {
		t.Fatalf("table holds %d ids, want %d", total, len(want))
	}
	for i, id := range s.heap {
		if int(s.rec(id).pos) != i {
			t.Fatalf("heap slot %d: record says %d", i, s.rec(id).pos)
		}
		if i > 0 && s.heapLess(i, (i-1)/2) {
			t.Fatalf("heap order broken at %d", i)
		}
	}
	var order []keyState
	s.index.Scan(func(id uint32) bool { order = append(order, s.state(id)); return true })
	sorted := slices.IsSortedFunc(order, func(a, b keyState) int { return indexCmp(&a, &b) })
	if !sorted {
		t.Fatal("index out of (hash, key) order")
	}
}

// TestStoreRandom applies random inserts, updates and removals, with short
// keys (in the record) and long ones (on the Go heap, among them one whose
// length is metaLong's value), narrow and wide intervals and spans (in the
// record, or with the span on the Go heap), and checks the
// store against a map after each burst; free records are reused, and
// segments grow and have entries shifted back as keys are removed.
func TestStoreRandom(t *testing.T) {
	for _, seed := range []int64{1, 2, 3} {
		t.Run(strconv.FormatInt(seed, 10), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			s := newStore()
			want := map[string]keyState{}
			key := func() string {
				n := rng.Intn(3000)
				k := strconv.Itoa(n)
				switch rng.Intn(7) {
				case 0:
					k += strings.Repeat("L", inlineKey) // long: in a slab
				case 1:
					k += strings.Repeat("s", inlineKey-len(k)) // exactly inline
				case 2:
					k += strings.Repeat("o", inlineKey+1-len(k)) // one over
				case 3:
					k += strings.Repeat("m", metaLong-len(k)) // the length metaLong stands for
				case 4:
					// Lengths across the slab sizes, and a few keys too
					// long for a slab.
					if n%97 == 0 {
						k += strings.Repeat("B", longBig+n%50)
					} else {
						k += strings.Repeat("v", 40+n*37%2000)
					}
				}
				return k
			}
			maxID := uint32(0)
			for round := range 40 {
				for range 500 {
					k := key()
					st := keyState{key: k, last: rng.Int63n(1000), interval: 1 + rng.Int63n(100), span: rng.Int63n(3) - 1, hash: keyHash(k)}
					switch rng.Intn(8) {
					case 0:
						st.cell, st.interval, st.span = true, 0, 0
					case 1:
						st.interval = 1<<32 - 1 + rng.Int63n(3) // at and past the narrow bound
					case 2:
						st.interval, st.span = 1+rng.Int63n(3), 1<<31-1+rng.Int63n(3)
					}
					id, r := s.get(k)
					switch {
					case r != nil && rng.Intn(3) == 0:
						s.remove(id)
						delete(want, k)
					case r != nil:
						s.update(id, st.last, st.interval, st.span, st.cell)
						want[k] = st
					default:
						maxID = max(maxID, s.insert(k, st.hash, st.last, st.interval, st.span, st.cell))
						want[k] = st
					}
				}
				checkStore(t, s, want)
				if round == 20 {
					// Drop the earliest half by deadline, as prune does.
					for n := len(want) / 2; n > 0; n-- {
						id := s.heap[0]
						delete(want, s.keyOf(id))
						s.remove(id)
					}
					checkStore(t, s, want)
				}
			}
			if int(maxID) > 3000*3 {
				t.Fatalf("ids up to %d for at most %d keys: records are not reused", maxID, 3000*3)
			}
			if out, _ := s.long.slots(); out > 3000*3 {
				t.Fatalf("%d long key slots for at most %d long keys: slots are not reused", out, 3000*3)
			}
		})
	}
}

// TestStoreFlushKeepsOldForCopy checks that a FLUSHALL during a snapshot
// copy leaves the copy's store intact: the walk still reads the keys as
// they were.
func TestStoreFlushKeepsOldForCopy(t *testing.T) {
	f := New(Config{})
	var cmds []Command
	for i := range 3000 {
		cmds = append(cmds, acq("k"+strconv.Itoa(i), 1000, 0))
	}
	apply(t, f, 1000, cmds...)
	want := stopTheWorld(t, f)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	apply(t, f, 1001, FlushAll{})
	apply(t, f, 1002, acq("k1", 5, 0), acq("new", 5, 0))
	img := snap.(*image)
	img.collect()
	var buf strings.Builder
	if err := img.writeTo(&buf); err != nil {
		t.Fatal(err)
	}
	if buf.String() != string(want) {
		t.Fatal("the image after FLUSHALL differs from the state at Snapshot")
	}
}
