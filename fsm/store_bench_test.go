package fsm

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkStoreGet measures store.get, the lookup under every Apply and
// every early denial, at 10k and 1M keys of redis-benchmark's shape
// (rN:key:__rand_int__, 19 bytes, inline): hits on held keys and misses on
// keys never inserted (what a new key costs), in a shuffled order so that
// consecutive lookups do not share cache lines.
func BenchmarkStoreGet(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		s := newStore()
		hits := make([]string, n)
		misses := make([]string, n)
		for i := range n {
			hits[i] = fmt.Sprintf("r1:key:%012d", i)
			misses[i] = fmt.Sprintf("r2:key:%012d", i)
			s.insert(hits[i], keyHash(hits[i]), 1000, 1000, 0, false)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		rng.Shuffle(n, func(i, j int) { hits[i], hits[j] = hits[j], hits[i] })
		rng.Shuffle(n, func(i, j int) { misses[i], misses[j] = misses[j], misses[i] })
		for _, c := range []struct {
			name string
			keys []string
			hit  bool
		}{{"hit", hits, true}, {"miss", misses, false}} {
			b.Run(fmt.Sprintf("keys=%d/%s", n, c.name), func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					id, _ := s.get(c.keys[i])
					if (id != 0) != c.hit {
						b.Fatalf("get(%q) = %d", c.keys[i], id)
					}
					if i++; i == len(c.keys) {
						i = 0
					}
				}
			})
		}
	}
}
