package fsm

import (
	"container/heap"
	"encoding/binary"
	"io"
	"slices"
	"strings"
)

// snapshotChunk is how many keys a snapshot copies per hold of the lock:
// a few hundred microseconds of copying, so that an Apply waits at most
// that long while a million keys are being copied.
var snapshotChunk = 1024

// keyCopy copies the keys of a snapshot in chunks, between Applies, as
// they were when the snapshot was taken, encoded as the image holds them.
//
// Why not copy them all in Snapshot: Raft calls Snapshot on the goroutine
// that applies entries, so every commit waits for it; a million keys take
// a few hundred milliseconds to copy. Instead Snapshot records where the
// copy stands and Persist (which Raft runs concurrently with later
// Applies) walks the scan index in (hash, key) order, a chunk per lock.
// Whatever Apply is about to change ahead of that walk, it first records
// here as it was (see FSM.preserve); the walk uses those records in place
// of what it finds, and puts the recorded keys that were removed from the
// index meanwhile in their place in the order. The image is thereby
// exactly the state at the snapshot's index.
//
// Why encoded, outside the Go heap (see keyBytes): the copy lives until
// Persist has written it, and as records on the Go heap a million keys
// took some 90 bytes a key, nearly doubling the node's memory while a
// snapshot was written; encoded they take what the image does (some 25).
// Copy-on-write of the store's chunks (as the tokens do) would leave
// nothing to copy, but the store is a hash table, an expiry heap and a
// scan index besides the records, all changed in place by every Apply;
// freezing them all would put a check and a possible chunk copy on every
// write, where this costs Apply a record only for keys it changes ahead
// of the walk.
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
	// order holds pre's copies in (hash, key) order, first first, so that
	// those no longer in the index are emitted where the walk passes their
	// place; a copy the walk has already used (no longer in pre) is
	// skipped when it comes up.
	order stateHeap
	// out receives the copy, in walk order.
	out *keyBytes
	// rec is scratch for encoding one key.
	rec []byte
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

// emit adds a key's snapshot state to the copy. key may be a view of a
// record's bytes: it is copied.
func (c *keyCopy) emit(key string, last, interval, span int64, cell bool) {
	k := c.out
	if cell {
		c.rec = appendCell(c.rec[:0], key, last)
		k.cells.write(c.rec)
		k.ncells++
		return
	}
	c.rec = appendKey(c.rec[:0], key, last, interval)
	k.keys.write(c.rec)
	k.nkeys++
	if span != 0 {
		c.rec = appendSpan(c.rec[:0], key, span)
		k.spans.write(c.rec)
		k.nspans++
	}
}

// emitState is emit for a recorded state.
func (c *keyCopy) emitState(st *keyState) {
	c.emit(st.key, st.last, st.interval, st.span, st.cell)
}

// emitRemoved emits the recorded keys before (hash, key) in index order
// that the walk did not meet: removed from the index since the snapshot.
// With the walk at (hash, key), nothing between pos and it is in the index,
// so they belong here.
func (c *keyCopy) emitRemoved(hash uint64, key string, all bool) {
	for len(c.order) > 0 {
		st := c.order[0]
		if !all && (st.hash > hash || st.hash == hash && st.key >= key) {
			return
		}
		heap.Pop(&c.order)
		if c.pre[st.key] == st {
			delete(c.pre, st.key)
			c.emitState(st)
		}
	}
}

// stateHeap is a min-heap of key states in (hash, key) order.
type stateHeap []*keyState

func (h stateHeap) Len() int           { return len(h) }
func (h stateHeap) Less(i, j int) bool { return indexLess(h[i], h[j]) }
func (h stateHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *stateHeap) Push(x any)        { *h = append(*h, x.(*keyState)) }
func (h *stateHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return x
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
			heap.Push(&c.order, &st)
		}
	}
}

// startCopy registers a copy of the keys as they are now; f.mu is held.
func (f *FSM) startCopy() *keyCopy {
	c := &keyCopy{store: f.ks, pre: make(map[string]*keyState), out: &keyBytes{}}
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
// unregisters c. The copy, in c.out, is then in (hash, key) order, the
// same whatever Applies ran meanwhile.
func (f *FSM) finishCopy(c *keyCopy) {
	for !f.copyChunk(c) {
	}
	c.pre, c.order = nil, nil
}

// copyChunk copies up to snapshotChunk keys of c's walk under the lock,
// and reports whether the walk is done (then c is unregistered).
func (f *FSM) copyChunk(c *keyCopy) (done bool) {
	if c.done {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	ks := c.store
	var last uint32 // the last key walked in this chunk
	visit := func(id uint32) bool {
		r := ks.rec(id)
		key := ks.keyView(id, r)
		if c.pos != nil && r.hash == c.pos.hash && key == c.pos.key {
			return true // the pivot itself was copied by the last chunk
		}
		if n == snapshotChunk {
			return false
		}
		n++
		c.emitRemoved(r.hash, key, false)
		if p, ok := c.pre[key]; ok {
			delete(c.pre, key)
			if p != nil {
				c.emitState(p)
			}
		} else {
			c.emit(key, r.last, r.interval(), ks.span(id, r), r.cell())
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
		r := ks.rec(last)
		c.pos = &keyState{hash: r.hash, key: strings.Clone(ks.keyView(last, r))}
	}
	if n < snapshotChunk {
		f.stopCopy(c)
		c.emitRemoved(0, "", true)
		c.done = true
		return true
	}
	return false
}

// keyBytes is a copy of the keys in image form (see image): the records of
// the keys, CL.THROTTLE keys and spans sections, each encoded in a byteLog,
// with their counts.
type keyBytes struct {
	keys, cells, spans    byteLog
	nkeys, ncells, nspans int
}

// free returns the copy's memory; nothing may use it afterwards.
func (k *keyBytes) free() {
	k.keys.free()
	k.cells.free()
	k.spans.free()
}

// byteLog is bytes appended in chunks outside the Go heap (allocOff), which
// free hands back to the system at once: written out once and dropped, a
// snapshot's copy must not linger in the collector's heap or its goal.
type byteLog struct {
	full [][]byte // chunks filled, each to its length
	cur  []byte   // the chunk being filled: cap is its size
}

// byteLogFirst and byteLogMost bound a byteLog's chunk sizes: the first
// is small, for the usual few CL.THROTTLE keys and spans, and each next
// doubles, up to a size whose mapping costs little against its copying.
const (
	byteLogFirst = 16 << 10
	byteLogMost  = 1 << 20
)

// write appends p.
func (l *byteLog) write(p []byte) {
	for len(p) > 0 {
		if len(l.cur) == cap(l.cur) {
			size := byteLogFirst
			if l.cur != nil {
				l.full = append(l.full, l.cur)
				size = min(2*cap(l.cur), byteLogMost)
			}
			l.cur = allocOff(size)[:0]
		}
		n := copy(l.cur[len(l.cur):cap(l.cur)], p)
		l.cur = l.cur[:len(l.cur)+n]
		p = p[n:]
	}
}

// writeTo writes what was appended to w.
func (l *byteLog) writeTo(w io.Writer) error {
	for _, b := range append(l.full, l.cur) {
		if len(b) == 0 {
			continue
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// free hands the chunks back; the log is empty afterwards.
func (l *byteLog) free() {
	for _, b := range l.full {
		freeOff(b[:cap(b)])
	}
	if l.cur != nil {
		freeOff(l.cur[:cap(l.cur)])
	}
	*l = byteLog{}
}

// appendKey appends a key's record in the image's keys part.
func appendKey(b []byte, key string, last, interval int64) []byte {
	b = appendString(b, key)
	b = binary.AppendVarint(b, last)
	return binary.AppendVarint(b, interval)
}

// appendCell appends a CL.THROTTLE key's record in section
// sectionCellKeys.
func appendCell(b []byte, key string, tat int64) []byte {
	return binary.AppendVarint(appendString(b, key), tat)
}

// appendSpan appends a key's record in section sectionSpans.
func appendSpan(b []byte, key string, span int64) []byte {
	return binary.AppendVarint(appendString(b, key), span)
}
