package fsm

// KeyOverhead is what one key costs in memory beyond its own bytes: its
// record's fixed fields, its share of the hash table, its slot in the
// expiry heap and its item in the scan index (see store). A key of up to
// 19 bytes (inlineKey) sits in the record itself, which holds 19 bytes
// whatever its length; it is still counted by its length, so that a
// longer key never costs less (the error is at most 18 bytes a key). A
// key longer than 19 bytes is kept in a slab of its size (see longKeys)
// and costs its bytes plus LongKeyOverhead. These were measured, not
// guessed: TestKeyCostMatchesHeap inserts 100,000 keys of 16, 100 and
// 1,000 bytes through Apply and reads the Go heap plus the store's memory
// outside it, and fails if the figure drifts from the measured one by more
// than a quarter (as it could if a Go release changed its map
// layout). With Go 1.26 on amd64 a 16-byte key measured 75 bytes in all,
// a 100-byte key 187 and a 1,000-byte key 1,099 (223 and 1,134 when long
// keys were Go strings, for which LongKeyOverhead was measured; it is
// kept, since every replica of a cluster must count alike, whatever its
// version, and it errs on the side of more). Both kinds of key
// (THROTTLE.ACQUIRE's and CL.THROTTLE's) hold the same record and cost the
// same.
const KeyOverhead = 60

// LongKeyOverhead is what a key longer than 19 bytes is accounted beyond
// KeyOverhead and its bytes: its slot's rounding and its share of the
// slab's chunks and free list (see KeyOverhead for why it is more than
// they take).
const LongKeyOverhead = 64

// KeyCost is the memory one key is accounted for: KeyOverhead plus the
// key's bytes, plus LongKeyOverhead for a key of more than 19. The accounting (see MemoryUsage) is a deterministic function of the
// key set, not a reading of memory: every replica computes the same
// figure, and garbage that the collector has not yet freed (decoded log
// entries, connection buffers) never counts.
func KeyCost(key string) int64 { return keyCostLen(len(key)) }

// keyCostLen is KeyCost of a key of n bytes.
func keyCostLen(n int) int64 {
	if n <= inlineKey {
		return KeyOverhead + int64(n)
	}
	return KeyOverhead + LongKeyOverhead + int64(n)
}

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
	return f.mem - f.ks.expiredCost(now) + f.tokens.mem - f.tokens.expiredCost(now)
}

// Exists reports whether key has state unexpired at cluster time
// max(now, clock): whether an Acquire on it would update a key rather than
// create one.
func (f *FSM) Exists(key string, now int64) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	_, st := f.liveAt(key, max(now, f.now))
	return st != nil
}
