package fsm

import (
	"slices"
	"sort"
	"strings"
)

// snapshotChunk is how many keys a snapshot copies per hold of the lock:
// a few hundred microseconds of copying, so that an Apply waits at most
// that long while a million keys are being copied.
var snapshotChunk = 1024

// keyCopy copies the keys of a snapshot in chunks, between Applies, as
// they were when the snapshot was taken.
//
// Why not copy them all in Snapshot: Raft calls Snapshot on the goroutine
// that applies entries, so every commit waits for it; a million keys take
// a few hundred milliseconds to copy. Instead Snapshot records where the
// copy stands and Persist (which Raft runs concurrently with later
// Applies) walks the scan index in (hash, key) order, a chunk per lock.
// Whatever Apply is about to change ahead of that walk, it first records
// here as it was (see FSM.preserve); the walk uses those records in place
// of what it finds, and adds the recorded keys that were removed from the
// index meanwhile. The image is thereby exactly the state at the
// snapshot's index.
//
// FlushAll and Restore replace the store rather than change it, so the
// old one, which the walk keeps (and so keeps allocated), is frozen from
// then on and needs no records. Within the store being walked, a record
// freed and reused for another key meanwhile is harmless: the walk finds
// keys by its position in (hash, key) order, never by record id, and the
// reused record's new key was recorded as absent when it was created.
type keyCopy struct {
	store *store // the store as of the snapshot
	// pos is the last key walked (only its hash and key are set); nil
	// before the first chunk.
	pos *keyState
	// pre holds, for each key changed ahead of pos since the snapshot, its
	// state at the snapshot: a copy, or nil when it did not exist.
	pre map[string]*keyState
	// size is how many keys there were at the snapshot: room for the copy
	// is made once, outside the lock.
	size int
	// keys and cells receive the copy, in walk order.
	keys  []keyState
	cells []cellKey
	// cellHash holds keyHash of each of cells, for finishCopy's merge.
	cellHash []uint64
	// done is set once the walk has reached the end of tree; the copy is
	// then unregistered, so Apply no longer records keys created ahead of
	// pos, and walking on would copy them.
	done bool
}

// ahead reports whether the key (hash, key) is still to be walked.
func (c *keyCopy) ahead(hash uint64, key string) bool {
	if c.pos == nil {
		return true
	}
	return hash > c.pos.hash || hash == c.pos.hash && key > c.pos.key
}

// emit adds a key's snapshot state to the copy.
func (c *keyCopy) emit(st keyState) {
	if st.cell {
		c.cells = append(c.cells, cellKey{key: st.key, tat: st.last})
		c.cellHash = append(c.cellHash, st.hash)
	} else {
		c.keys = append(c.keys, keyState{key: st.key, last: st.last, interval: st.interval, span: st.span, hash: st.hash})
	}
}

// preserve records, for every copy under way whose walk has not reached
// it, the state of key (record id, or 0 when absent) before Apply changes
// it; f.mu is held for writing. hash is keyHash(key); key may be a view
// of the record's bytes (it is copied when kept).
func (f *FSM) preserve(key string, hash uint64, id uint32) {
	for _, c := range f.copies {
		if c.store != f.ks || !c.ahead(hash, key) {
			continue
		}
		if _, ok := c.pre[key]; ok {
			continue // the first change is the one that counts
		}
		if id == 0 {
			c.pre[strings.Clone(key)] = nil
		} else {
			st := f.ks.state(id)
			c.pre[st.key] = &st
		}
	}
}

// startCopy registers a copy of the keys as they are now; f.mu is held.
func (f *FSM) startCopy() *keyCopy {
	c := &keyCopy{store: f.ks, pre: make(map[string]*keyState), size: f.ks.len()}
	f.copies = append(f.copies, c)
	return c
}

// stopCopy unregisters c, finished or abandoned; f.mu is held.
func (f *FSM) stopCopy(c *keyCopy) {
	for i, x := range f.copies {
		if x == c {
			// slices.Delete clears the vacated slot: a pointer left past
			// the slice's length would keep c, and with it the whole copy
			// of the keys, alive until the next snapshot overwrote it.
			f.copies = slices.Delete(f.copies, i, i+1)
			return
		}
	}
}

// finishCopy walks the rest of c's index a chunk per lock hold, and
// unregisters c. The copy, in c.keys and c.cells, is then in (hash, key)
// order, the same whatever Applies ran meanwhile.
func (f *FSM) finishCopy(c *keyCopy) {
	c.keys = slices.Grow(c.keys, c.size)
	for !f.copyChunk(c) {
	}
	// What remains recorded are keys removed from the index after the
	// snapshot (or added and removed again: nil): the ones pruned, reset
	// or given back during the copy, usually few; merge them into place.
	var removed []keyState
	for _, p := range c.pre {
		if p != nil {
			removed = append(removed, *p)
		}
	}
	c.pre = nil
	if len(removed) == 0 {
		return
	}
	sort.Slice(removed, func(i, j int) bool { return indexLess(&removed[i], &removed[j]) })
	var keys, cells []keyState
	for _, st := range removed {
		if st.cell {
			cells = append(cells, st)
		} else {
			keys = append(keys, st)
		}
	}
	c.keys = mergeSorted(c.keys, keys, func(i int) *keyState { return &c.keys[i] }, func(st keyState) keyState { return st })
	var cur keyState // the cell compared, rewritten for each comparison
	c.cells = mergeSorted(c.cells, cells, func(i int) *keyState {
		cur.key, cur.hash = c.cells[i].key, c.cellHash[i]
		return &cur
	}, func(st keyState) cellKey { return cellKey{key: st.key, tat: st.last} })
	c.cellHash = nil
}

// mergeSorted merges the records b, in index order, into a, also in index
// order, whose i-th element's key and hash at(i) gives; to turns a record
// into an element.
func mergeSorted[T any](a []T, b []keyState, at func(i int) *keyState, to func(keyState) T) []T {
	if len(b) == 0 {
		return a
	}
	out := make([]T, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if indexLess(&b[j], at(i)) {
			out = append(out, to(b[j]))
			j++
		} else {
			out = append(out, a[i])
			i++
		}
	}
	out = append(out, a[i:]...)
	for ; j < len(b); j++ {
		out = append(out, to(b[j]))
	}
	return out
}

// copyChunk copies up to snapshotChunk keys of c's walk, and reports
// whether the walk is done (then c is unregistered).
func (f *FSM) copyChunk(c *keyCopy) (done bool) {
	if c.done {
		return true
	}
	// Room for the chunk is made before taking the lock: growing a copy of
	// a million keys moves tens of megabytes, which no Apply should wait
	// for.
	c.keys = slices.Grow(c.keys, snapshotChunk)
	c.cells = slices.Grow(c.cells, snapshotChunk)
	c.cellHash = slices.Grow(c.cellHash, snapshotChunk)
	return f.copyLocked(c)
}

// copyLocked is copyChunk's part under the lock.
func (f *FSM) copyLocked(c *keyCopy) (done bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	ks := c.store
	var last uint32 // the last key walked in this chunk
	visit := func(id uint32) bool {
		st := ks.rec(id)
		key := ks.keyView(id, st)
		if c.pos != nil && st.hash == c.pos.hash && key == c.pos.key {
			return true // the pivot itself was copied by the last chunk
		}
		if n == snapshotChunk {
			return false
		}
		n++
		if p, ok := c.pre[key]; ok {
			delete(c.pre, key)
			if p != nil {
				c.emit(*p)
			}
		} else {
			c.emit(ks.state(id))
		}
		last = id
		return true
	}
	if c.pos != nil {
		ks.ascend(c.pos.hash, c.pos.key, visit)
	} else {
		ks.index.Scan(visit)
	}
	if last != 0 {
		// A copy of the position, not the record, which Apply may free.
		st := ks.state(last)
		c.pos = &keyState{hash: st.hash, key: st.key}
	}
	if n < snapshotChunk {
		f.stopCopy(c)
		c.done = true
		return true
	}
	return false
}
