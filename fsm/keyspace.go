package fsm

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/maphash"
)

// KeyType is the kind of value a key holds, as TYPE names it.
type KeyType uint8

const (
	// TypeNone is an absent or expired key.
	TypeNone KeyType = iota
	// TypeThrottle is a key made by THROTTLE.ACQUIRE.
	TypeThrottle
	// TypeCell is a key made by CL.THROTTLE.
	TypeCell
)

// String returns the name TYPE replies with: none, throttle or cl.throttle.
func (t KeyType) String() string {
	switch t {
	case TypeThrottle:
		return "throttle"
	case TypeCell:
		return "cl.throttle"
	default:
		return "none"
	}
}

// keyHash places a key in the scan index. SHA-256 rather than a faster
// hash because SCAN returns all the keys that share a hash in one call:
// with a hash whose collisions can be made at will (FNV, xxhash), a client
// choosing its keys could make one SCAN call walk them all. It is fixed,
// not seeded, so a cursor means the same on every node and across restarts.
func keyHash(key string) uint64 {
	sum := sha256.Sum256([]byte(key))
	return binary.BigEndian.Uint64(sum[:8])
}

// indexCmp is indexLess as a three-way comparison.
func indexCmp(x, y *keyState) int {
	switch {
	case indexLess(x, y):
		return -1
	case indexLess(y, x):
		return 1
	}
	return 0
}

// indexLess is the scan index's order: by hash, then by key.
func indexLess(x, y *keyState) bool {
	if x.hash != y.hash {
		return x.hash < y.hash
	}
	return x.key < y.key
}

// applyCell applies a CL.THROTTLE; f.mu is held.
func (f *FSM) applyCell(c CellThrottle) Result {
	kid, st := f.held(c.Key)
	if st != nil && !st.cell() {
		return Result{Err: fmt.Errorf("%w: %s was made by THROTTLE.ACQUIRE", ErrWrongType, quoteName(c.Key))}
	}
	var tat int64
	if st != nil {
		tat = st.last
	}
	d, err := decideCell(c, tat, st != nil, f.now)
	if err != nil {
		return Result{Err: err}
	}
	if d.store && kid == 0 && f.full(f.now) {
		return Result{Err: keyLimit(c.Key)}
	}
	if c.Quantity > 0 {
		if d.res.Limited {
			f.stats.Denials++
		} else {
			f.stats.Grants++
		}
	}
	if d.store {
		f.setKey(c.Key, kid, d.tat, 0, 0, true)
	}
	return Result{Cell: d.res}
}

// liveAt returns key's id and record if it is unexpired at cluster time
// now, else 0 and nil; f.mu is held.
func (f *FSM) liveAt(key string, now int64) (uint32, *record) {
	return f.liveAtHashed(key, maphash.String(tableSeed, key), now)
}

// liveAtHashed is liveAt for a key whose table hash h the caller has.
func (f *FSM) liveAtHashed(key string, h uint64, now int64) (uint32, *record) {
	id, st := f.ks.getHashed(key, h)
	if st == nil || now >= st.deadline() {
		return 0, nil
	}
	return id, st
}

// PeekCell answers c as Apply would at cluster time max(now, clock),
// changing nothing.
func (f *FSM) PeekCell(c CellThrottle, now int64) (CellResult, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	now = max(now, f.now)
	_, st := f.liveAt(c.Key, now)
	if st != nil && !st.cell() {
		return CellResult{}, fmt.Errorf("%w: %s was made by THROTTLE.ACQUIRE", ErrWrongType, quoteName(c.Key))
	}
	var tat int64
	if st != nil {
		tat = st.last
	}
	d, err := decideCell(c, tat, st != nil, now)
	if err == nil && d.store && st == nil && f.full(now) {
		return CellResult{}, keyLimit(c.Key)
	}
	return d.res, err
}

// Lookup returns the type of key at cluster time max(now, clock) and, when
// it exists, the cluster time (Unix ms) at which it expires: the first
// millisecond at which it no longer exists.
func (f *FSM) Lookup(key string, now int64) (t KeyType, expiresAt int64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	_, st := f.liveAt(key, max(now, f.now))
	if st == nil {
		return TypeNone, 0
	}
	return st.keyType(), st.deadline()
}

// ScanFilter decides whether SCAN and KEYS return a key of type t.
type ScanFilter func(key string, t KeyType) bool

// Scan walks the keyspace in the order of the scan index, from cursor: it
// visits up to count keys (more when keys share the hash of the last one
// visited, so that a cursor never splits them), returns the visited ones
// unexpired at cluster time max(now, clock) that keep passes (nil: all),
// and the cursor to continue from, 0 when the walk is complete.
//
// A cursor is a position in hash order, not in a table, so the guarantees
// of Redis's SCAN hold whatever is added or removed between calls: a key
// present from the first call to the last is returned exactly once (its
// hash is visited once), a key added or removed meanwhile may or may not
// be. Each call costs O(log n + count).
func (f *FSM) Scan(cursor uint64, count int, now int64, keep ScanFilter) (next uint64, keys []string) {
	if count < 1 {
		count = 1
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	now = max(now, f.now)
	visited := 0
	var last uint64
	done := true
	f.ks.ascend(cursor, "", func(id uint32) bool {
		st := f.ks.rec(id)
		if visited >= count && st.hash != last {
			done = false
			return false
		}
		visited++
		last = st.hash
		if now < st.deadline() && (keep == nil || keep(f.ks.keyView(id, st), st.keyType())) {
			keys = append(keys, f.ks.keyOf(id))
		}
		return true
	})
	if done || last == ^uint64(0) {
		return 0, keys
	}
	return last + 1, keys
}

// AllKeys returns every key unexpired at cluster time max(now, clock) that
// keep passes (nil: all), in scan order: KEYS, which costs O(n).
func (f *FSM) AllKeys(now int64, keep ScanFilter) []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	now = max(now, f.now)
	var keys []string
	f.ks.index.Scan(func(id uint32) bool {
		st := f.ks.rec(id)
		if now < st.deadline() && (keep == nil || keep(f.ks.keyView(id, st), st.keyType())) {
			keys = append(keys, f.ks.keyOf(id))
		}
		return true
	})
	return keys
}

// RandomKey returns a key unexpired at cluster time max(now, clock), chosen
// by pick (which returns a number in [0, n)), or false when there is none.
// The state machine reads no randomness itself: the caller supplies it.
// Each try picks uniformly among all keys held; expired keys not yet
// pruned are skipped, and after a few misses the keys are walked from a
// random place, so that a state of mostly expired keys still answers.
func (f *FSM) RandomKey(now int64, pick func(n int) int) (string, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	now = max(now, f.now)
	h := f.ks.heap
	n := len(h)
	if n == 0 {
		return "", false
	}
	for range 8 {
		if id := h[pick(n)]; now < f.ks.rec(id).deadline() {
			return f.ks.keyOf(id), true
		}
	}
	start := pick(n)
	for i := range n {
		if id := h[(start+i)%n]; now < f.ks.rec(id).deadline() {
			return f.ks.keyOf(id), true
		}
	}
	return "", false
}
