package fsm

// expiryHeap orders live keys by deadline so that expired keys can be
// dropped in O(log n) each. Dropping them never changes an answer (an expired
// key behaves exactly like an absent one); it only bounds memory.
type expiryHeap []*keyState

func (h expiryHeap) Len() int { return len(h) }

func (h expiryHeap) Less(i, j int) bool {
	if h[i].deadline() != h[j].deadline() {
		return h[i].deadline() < h[j].deadline()
	}
	return h[i].key < h[j].key // a total order keeps pruning deterministic
}

func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h *expiryHeap) Push(x any) {
	k := x.(*keyState)
	k.index = len(*h)
	*h = append(*h, k)
}

func (h *expiryHeap) Pop() any {
	old := *h
	n := len(old)
	k := old[n-1]
	old[n-1] = nil
	k.index = -1
	*h = old[:n-1]
	return k
}

// countExpired counts keys whose deadline is at or before now by walking only
// the heap nodes that are themselves expired (a parent's deadline is never
// later than its children's).
func (h expiryHeap) countExpired(now int64) int {
	var walk func(i int) int
	walk = func(i int) int {
		if i >= len(h) || h[i].deadline() > now {
			return 0
		}
		return 1 + walk(2*i+1) + walk(2*i+2)
	}
	return walk(0)
}

// expiredCost is the sum of KeyCost over the keys whose deadline is at or
// before now, walking only the expired heap nodes as countExpired does.
func (h expiryHeap) expiredCost(now int64) int64 {
	var walk func(i int) int64
	walk = func(i int) int64 {
		if i >= len(h) || h[i].deadline() > now {
			return 0
		}
		return KeyCost(h[i].key) + walk(2*i+1) + walk(2*i+2)
	}
	return walk(0)
}
