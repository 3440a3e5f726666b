package fsm

// The expiry heap orders live keys by deadline so that expired keys can be
// dropped in O(log n) each. Dropping them never changes an answer (an
// expired key behaves exactly like an absent one); it only bounds memory.
// It is a binary min-heap of record ids in store.heap, each record
// knowing its position; the algorithm is container/heap's, without the
// interface (which would box every id it moves).

// heapLess orders by deadline, then by the key's hash, then by the key: a
// total order, the same on every replica. Only pruning reads the order, and
// it removes every key due, so the tie-breaks change nothing a replica
// holds; the hash comes before the key because the keys of one log entry
// share a deadline, and a key longer than a record holds is read from a
// map.
func (s *store) heapLess(i, j int) bool {
	a, b := s.heap[i], s.heap[j]
	ra, rb := s.rec(a), s.rec(b)
	if da, db := ra.deadline(), rb.deadline(); da != db {
		return da < db
	}
	if ra.hash != rb.hash {
		return ra.hash < rb.hash
	}
	return s.keyView(a, ra) < s.keyView(b, rb)
}

func (s *store) heapSwap(i, j int) {
	h := s.heap
	h[i], h[j] = h[j], h[i]
	s.rec(h[i]).pos = uint32(i)
	s.rec(h[j]).pos = uint32(j)
}

func (s *store) heapUp(j int) {
	for {
		i := (j - 1) / 2 // parent
		if i == j || !s.heapLess(j, i) {
			break
		}
		s.heapSwap(i, j)
		j = i
	}
}

func (s *store) heapDown(i0, n int) bool {
	i := i0
	for {
		j1 := 2*i + 1
		if j1 >= n || j1 < 0 {
			break
		}
		j := j1
		if j2 := j1 + 1; j2 < n && s.heapLess(j2, j1) {
			j = j2
		}
		if !s.heapLess(j, i) {
			break
		}
		s.heapSwap(i, j)
		i = j
	}
	return i > i0
}

// heapAppend adds id at the end of the heap without restoring its order
// (heapInit or heapUp does that).
func (s *store) heapAppend(id uint32) {
	n := len(s.heap)
	if n == cap(s.heap) {
		c := max(64, 2*n)
		h, raw := allocU32(c)
		copy(h, s.heap)
		freeOff(s.mem.heap)
		s.heap, s.mem.heap = h[:n], raw
	}
	s.heap = s.heap[:n+1]
	s.heap[n] = id
	s.rec(id).pos = uint32(n)
}

func (s *store) heapPush(id uint32) {
	s.heapAppend(id)
	s.heapUp(len(s.heap) - 1)
}

func (s *store) heapRemove(i int) {
	n := len(s.heap) - 1
	last := s.heap[n]
	s.heap = s.heap[:n]
	if n != i {
		s.heapSettle(i, last)
	}
}

// heapFix moves the id at i to its place after its deadline changed.
func (s *store) heapFix(i int) {
	if i > 0 && s.heapLess(i, (i-1)/2) {
		s.heapUp(i)
		return
	}
	s.heapSettle(i, s.heap[i])
}

// heapSettle puts id, which belongs no higher than i, in the heap with a
// hole at i: the hole goes down to a leaf, the smaller child moving up at
// each level, and id then rises from there (Floyd's way). A pruned key's
// place is taken by the last, and a granted key's deadline moves past
// almost every other: either way it belongs near the bottom, and going
// down this way compares once a level instead of twice, each comparison
// reading records scattered in memory.
func (s *store) heapSettle(i int, id uint32) {
	h := s.heap
	n := len(h)
	for {
		j := 2*i + 1
		if j >= n || j < 0 {
			break
		}
		if j2 := j + 1; j2 < n && s.heapLess(j2, j) {
			j = j2
		}
		h[i] = h[j]
		s.rec(h[i]).pos = uint32(i)
		i = j
	}
	h[i] = id
	s.rec(id).pos = uint32(i)
	s.heapUp(i)
}

func (s *store) heapInit() {
	n := len(s.heap)
	for i := n/2 - 1; i >= 0; i-- {
		s.heapDown(i, n)
	}
}

// countExpired counts keys whose deadline is at or before now by walking only
// the heap nodes that are themselves expired (a parent's deadline is never
// later than its children's).
func (s *store) countExpired(now int64) int {
	var walk func(i int) int
	walk = func(i int) int {
		if i >= len(s.heap) || s.rec(s.heap[i]).deadline() > now {
			return 0
		}
		return 1 + walk(2*i+1) + walk(2*i+2)
	}
	return walk(0)
}

// expiredCost is the sum of KeyCost over the keys whose deadline is at or
// before now, walking only the expired heap nodes as countExpired does.
func (s *store) expiredCost(now int64) int64 {
	var walk func(i int) int64
	walk = func(i int) int64 {
		if i >= len(s.heap) {
			return 0
		}
		r := s.rec(s.heap[i])
		if r.deadline() > now {
			return 0
		}
		return keyCostLen(s.keyLen(s.heap[i], r)) + walk(2*i+1) + walk(2*i+2)
	}
	return walk(0)
}
