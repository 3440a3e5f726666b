package server

import "testing"

func TestStoredRing(t *testing.T) {
	var r storedRing
	r.put(7, 100)
	r.put(7+storedRingSize+1, 300) // another slot
	for _, tc := range []struct {
		name   string
		put    [][2]int64 // index, at, in order, before the get
		get    uint64
		want   int64
		wantOK bool
	}{
		{name: "stored", get: 7, want: 100, wantOK: true},
		{name: "never stored", get: 8},
		{name: "index 0 never matches an empty slot", get: 0},
		{name: "same slot, newer entry", put: [][2]int64{{7 + storedRingSize, 200}}, get: 7},
		{name: "the newer entry", get: 7 + storedRingSize, want: 200, wantOK: true},
		{name: "rewritten entry", put: [][2]int64{{7 + storedRingSize, 250}}, get: 7 + storedRingSize, want: 250, wantOK: true},
		{name: "neighbour untouched", get: 7 + storedRingSize + 1, want: 300, wantOK: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range tc.put {
				r.put(uint64(p[0]), p[1])
			}
			at, ok := r.get(tc.get)
			if ok != tc.wantOK || ok && at != tc.want {
				t.Fatalf("get(%d) = %d, %v; want %d, %v", tc.get, at, ok, tc.want, tc.wantOK)
			}
		})
	}
}
