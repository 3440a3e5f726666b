package fsm

import (
	"cmp"
	"math/rand"
	"slices"
	"strconv"
	"testing"
)

// TestScanIndexRandom checks the scan index against a sorted slice
// through random inserts and removals (splitting and merging blocks), a
// load in order, full walks and walks from random places, and that the
// blocks stay a sixteenth full or more on average whatever is removed,
// and that the directory's cached first hashes stay those of the blocks'
// first ids throughout. With ties, hashes are drawn from a few values, so
// that most comparisons fall to the tie-break (the key, in the store) and
// runs of equal hashes span blocks.
func TestScanIndexRandom(t *testing.T) {
	for _, tc := range []struct {
		name        string
		ids, rounds int
		load        bool // start from a load in order, as a restore does
		removeBias  int  // out of 10: how often an operation removes
		ties        bool // hashes from 0 to 7, ordered then by tie
		bunched     bool // hashes in a few narrow bunches, not spread evenly
	}{
		{"small", 40, 200, false, 5, false, false},
		{"grow", 20_000, 40, false, 2, false, false},
		{"loaded then shrunk", 20_000, 40, true, 8, false, false},
		{"churn", 5_000, 60, false, 5, false, false},
		{"ties churn", 5_000, 60, false, 5, true, false},
		{"ties loaded then shrunk", 5_000, 30, true, 8, true, false},
		{"bunched churn", 5_000, 60, false, 5, false, true},
		{"bunched grow", 20_000, 40, false, 2, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(tc.ids)))
			vals := make([]uint64, tc.ids+1) // vals[0] and tie[0] are the probe
			tie := make([]uint64, tc.ids+1)
			for i := 1; i <= tc.ids; i++ {
				vals[i] = rng.Uint64() >> 1 // unique with overwhelming odds
				tie[i] = rng.Uint64() >> 1
				if tc.ties {
					vals[i] %= 8
				}
				if tc.bunched {
					// Interpolating between a block's bounds guesses
					// badly here: a find must still be exact.
					vals[i] = uint64(rng.Intn(5))<<60 | uint64(rng.Intn(3))<<40 | vals[i]>>(24+rng.Intn(36))
				}
			}
			order := func(a, b uint32) int {
				if c := cmp.Compare(vals[a], vals[b]); c != 0 {
					return c
				}
				return cmp.Compare(tie[a], tie[b])
			}
			m := &offMem{}
			defer m.release()
			x := newScanIndex(func(id uint32) uint64 { return vals[id] }, func(a, b uint32) bool { return tie[a] < tie[b] }, m)
			held := map[uint32]bool{}
			if tc.load {
				all := make([]uint32, 0, tc.ids)
				for i := 1; i <= tc.ids; i++ {
					all = append(all, uint32(i))
				}
				slices.SortFunc(all, order)
				for _, id := range all {
					x.Load(id)
					held[id] = true
				}
			}
			check := func() {
				t.Helper()
				want := make([]uint32, 0, len(held))
				for id := range held {
					want = append(want, id)
				}
				slices.SortFunc(want, order)
				if x.Len() != len(want) {
					t.Fatalf("Len %d, want %d", x.Len(), len(want))
				}
				if len(x.first) != len(x.dir) {
					t.Fatalf("%d first hashes for %d blocks", len(x.first), len(x.dir))
				}
				for i, b := range x.dir {
					if x.cnt[b] == 0 || x.first[i] != vals[x.block(b)[0]] {
						t.Fatalf("block %d of %d: %d ids, cached first hash %d, first id's %d", i, len(x.dir), x.cnt[b], x.first[i], vals[x.block(b)[0]])
					}
				}
				var got []uint32
				x.Scan(func(id uint32) bool { got = append(got, id); return true })
				if !slices.Equal(got, want) {
					t.Fatalf("walk of %d ids differs from the %d held", len(got), len(want))
				}
				for range 20 {
					vals[0], tie[0] = rng.Uint64()>>1, rng.Uint64()>>1
					if tc.ties {
						vals[0] %= 9 // 8: after every id
					}
					if tc.bunched && rng.Intn(2) == 0 {
						vals[0] = uint64(rng.Intn(6))<<60 | uint64(rng.Intn(3))<<40 | vals[0]>>(24+rng.Intn(36))
					}
					if rng.Intn(4) == 0 && len(want) > 0 {
						w := want[rng.Intn(len(want))] // exactly at a held id
						vals[0], tie[0] = vals[w], tie[w]
					}
					i, _ := slices.BinarySearchFunc(want, uint32(0), order)
					stop := i + rng.Intn(300)
					var from []uint32
					x.Ascend(0, func(id uint32) bool {
						if i+len(from) == stop {
							return false
						}
						from = append(from, id)
						return true
					})
					if !slices.Equal(from, want[i:min(stop, len(want))]) {
						t.Fatalf("walk from %d: %d ids, want %d", vals[0], len(from), len(want[i:min(stop, len(want))]))
					}
				}
				if len(held) >= 1000 && len(held)/len(x.dir) < 16 {
					t.Fatalf("%d ids in %d blocks", len(held), len(x.dir))
				}
			}
			for range tc.rounds {
				for range 1000 {
					id := uint32(1 + rng.Intn(tc.ids))
					switch {
					case held[id] && rng.Intn(10) < tc.removeBias:
						x.Delete(id)
						delete(held, id)
					case !held[id] && rng.Intn(10) >= tc.removeBias:
						x.Set(id)
						held[id] = true
					}
				}
				check()
			}
			for id := range held {
				x.Delete(id)
				delete(held, id)
			}
			check()
			if len(x.dir) != 0 {
				t.Fatalf("empty index keeps %d blocks", len(x.dir))
			}
		})
	}
}

// BenchmarkScanIndexSet measures inserting into a scan index of n ids in
// random order, with ids compared through their records as the store does.
func BenchmarkScanIndexSet(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			s := newStore()
			defer s.mem.release()
			for i := range n {
				k := "key:" + strconv.Itoa(i)
				s.insert(k, keyHash(k), 1000, 1e9, 0, false)
			}
			b.ResetTimer()
			for i := range b.N {
				k := "new:" + strconv.Itoa(i)
				id := s.insert(k, keyHash(k), 1000, 1e9, 0, false)
				s.remove(id)
			}
		})
	}
}
