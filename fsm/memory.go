package fsm

// KeyOverhead is what one key costs in memory beyond its own bytes: the map
// entry, the keyState record, its slot in the expiry heap and its item in
// the scan index, averaged over the map's growth steps. It was measured, not
// guessed: TestKeyCostMatchesHeap inserts 100,000 keys through Apply and
// reads the live heap, and fails if this figure drifts from the runtime's by
// more than a quarter (as it could when a Go release changes its map
// layout). With Go 1.26 on amd64 the measured fixed cost is 130-143 bytes
// depending on where the map is in its growth; 136 is in the middle of that,
// and the allocator's rounding of the key's bytes up to a size class comes
// on top of it on average. Both kinds of key (THROTTLE.ACQUIRE's and
// CL.THROTTLE's) hold the same record and cost the same.
const KeyOverhead = 136

// KeyCost is the memory one key is accounted for: KeyOverhead plus the
// key's bytes. The accounting (see MemoryUsage) is a deterministic function
// of the key set, not a reading of the Go heap: every replica computes the
// same figure, and garbage that the collector has not yet freed (decoded log
// entries, connection buffers) never counts.
func KeyCost(key string) int64 { return KeyOverhead + int64(len(key)) }

// MemoryUsage returns the accounted memory (the sum of KeyCost and
// TokenCost) of the keys and idempotency tokens unexpired at cluster time
// max(now, clock): what the live state holds.
// Expired keys that Apply has not yet pruned are left out, because the next
// applied entry drops them; counting them would keep a full state refusing
// new keys when the very entry it refused would have freed the room. It
// costs O(1) plus the number of such expired keys.
func (f *FSM) MemoryUsage(now int64) int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	now = max(now, f.now)
	return f.mem - f.exp.expiredCost(now) + f.tokens.mem - f.tokens.expiredCost(now)
}

// Exists reports whether key has state unexpired at cluster time
// max(now, clock): whether an Acquire on it would update a key rather than
// create one.
func (f *FSM) Exists(key string, now int64) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	st := f.keys[key]
	return st != nil && max(now, f.now) < st.deadline()
}
