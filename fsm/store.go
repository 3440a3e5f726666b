package fsm

import (
	"encoding/binary"
	"hash/maphash"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"unsafe"
)

// inlineKey is how many bytes of key a record holds itself; a longer key
// is kept in a slab of its size (see longKeys). 19 makes a record 48 bytes and
// holds redis-benchmark's key:__rand_int__ (16 bytes), a short prefix and
// a 12-digit ID, or a user ID with a route.
const inlineKey = 19

// record is the state of one key as the store holds it: a fixed-size,
// pointer-free struct in memory outside the Go heap (see store). It must
// never hold a Go pointer: the collector does not see that memory, and
// would free what such a pointer points to.
//
// The interval and span share one word: the interval in the low 32 bits
// (up to 49 days of milliseconds) and the span in the high 32, signed. A
// key whose interval or span does not fit is wide (metaWide): the word
// holds the whole interval, and its span is kept in store.wide. Either
// way the record alone gives the deadline, which the expiry heap compares
// on every move.
type record struct {
	hash uint64 // keyHash(key): the key's place in the scan index
	last int64  // newest granted slot; for a cell key, its TAT in ns
	ivsp uint64 // interval and span, or the interval alone when wide
	pos  uint32 // position in the expiry heap
	meta uint8  // inline key length (metaLen), or metaLong; flags
	key  [inlineKey]byte
}

// The record must stay 48 bytes: KeyOverhead and the chunk size assume it.
var (
	_ [48 - unsafe.Sizeof(record{})]byte
	_ [unsafe.Sizeof(record{}) - 48]byte
)

// A record of a key longer than inlineKey holds, in its key bytes, the
// key's table hash (8 bytes), length (4) and slot in store.long (4): the
// table reads the hash when it moves or removes the key, and pruning the
// length to account for its size, instead of looking the key up and
// hashing it again, which was a map lookup for every table slot moved
// and a third of a removal's cost. The table hash is local to this
// process (see tableSeed), like the rest of the record's layout.
const (
	longHashAt = 0
	longLenAt  = 8
	longSlotAt = 12
)

// The fields sit at odd offsets in the record: encoding/binary reads and
// writes them whatever the platform's alignment rules (one load or store
// where unaligned access is allowed).
func (r *record) longHash() uint64 {
	return binary.LittleEndian.Uint64(r.key[longHashAt:])
}

func (r *record) longLen() int {
	return int(binary.LittleEndian.Uint32(r.key[longLenAt:]))
}

func (r *record) longSlot() uint32 {
	return binary.LittleEndian.Uint32(r.key[longSlotAt:])
}

func (r *record) setLong(th uint64, n int, slot uint32) {
	binary.LittleEndian.PutUint64(r.key[longHashAt:], th)
	binary.LittleEndian.PutUint32(r.key[longLenAt:], uint32(n))
	binary.LittleEndian.PutUint32(r.key[longSlotAt:], slot)
}

const (
	metaLen  = 1<<5 - 1 // inline key length, or metaLong
	metaLong = metaLen  // the key is longer than inlineKey: see longKeys
	metaWide = 1 << 5   // interval and span do not fit 32 bits each
	metaCell = 1 << 6   // a CL.THROTTLE key
	metaLive = 1 << 7   // the record holds a key (not on the free list)
)

func (r *record) cell() bool { return r.meta&metaCell != 0 }

// interval is the interval the key was granted with; 0 for a cell key.
func (r *record) interval() int64 {
	if r.meta&metaWide != 0 {
		return int64(r.ivsp)
	}
	return int64(uint32(r.ivsp))
}

// narrow reports whether interval and span fit the record's word.
func narrow(interval, span int64) bool {
	return interval >= 0 && interval <= 1<<32-1 && span >= -1<<31 && span < 1<<31
}

// deadline is when the key expires (Unix ms) and becomes indistinguishable
// from an absent key. Grants check that it fits in int64 (see decide). A
// cell key lives while cluster time, in ns, is before its TAT: until the
// first millisecond at or after it.
func (r *record) deadline() int64 {
	if r.cell() {
		return ceilDiv(r.last, nsPerMs)
	}
	return r.last + r.interval()
}

func (r *record) keyType() KeyType {
	if r.cell() {
		return TypeCell
	}
	return TypeThrottle
}

const (
	// chunkShift sets how many records a chunk holds (16,384: 768 KiB).
	// Records live in chunks that never move, so that a record's address
	// stays valid and growing the store copies nothing.
	chunkShift   = 14
	chunkRecords = 1 << chunkShift
	// segBits sets the number of hash table segments (256). Each grows on
	// its own, so growing the table moves 1/256 of it at a time: a few
	// hundred microseconds with a million keys, not the tens of
	// milliseconds of rehashing one table.
	segBits     = 8
	nsegs       = 1 << segBits
	minSegSlots = 16
	// offHeapMin is the size from which a table segment or the expiry heap
	// is allocated outside the Go heap; smaller ones are plain slices
	// (pointer-free, so never scanned), since a mapping takes whole pages.
	offHeapMin = 16 << 10
)

// tableSeed seeds the hash table's hash. The table's layout is local to
// this process, never replicated or persisted (snapshots, digests and
// SCAN use keyHash, the scan index's order), so a seed chosen at random
// per process is safe for determinism, and it is what makes the table
// resistant to keys chosen to collide: keyHash is fixed, and a client can
// grind keys whose SHA-256 agrees in the few low bits a table slot uses
// (2^20 tries for a million-slot table), which would turn every lookup
// into a scan; with a secret seed it cannot aim. maphash is also 10-20
// times cheaper than SHA-256 on every lookup, while keyHash is computed
// only when a key is created.
var tableSeed = maphash.MakeSeed()

// A table slot holds a record id in its low idBits and, in its high
// tagBits, a tag: tagBits of the key's table hash that neither the segment
// nor the slot index uses. A lookup compares the tag before it reads the
// record, so a probe past another key reads the record (a likely cache
// miss, outside the 4-byte slot array) only once in 2^tagBits: a miss at
// three quarters load probes some 8.5 slots, all in one or two cache
// lines, and reads 0.27 records instead of 8.5. Storing more of the hash
// beside each id would grow the table by 4 bytes a slot (about 8 bytes a
// key); taking the bits from the id costs no memory and caps the store at
// maxKeys keys (see ErrKeyLimit). The layout is local to the process: it
// is never in a snapshot, digest or the log, and Restore rebuilds it.
const (
	tagBits   = 5
	idBits    = 32 - tagBits
	idMask    = 1<<idBits - 1
	tagShift  = 64 - segBits - tagBits // the hash bits just below the segment's
	maxIDKeys = idMask                 // ids run from 1 to idMask
)

// maxKeys is how many keys a store holds at most: what the ids fit in
// idBits allow. Apply refuses a new key past it (ErrKeyLimit), on every
// replica alike since the count of keys is replicated state. Tests lower
// it; nothing else changes it.
var maxKeys = maxIDKeys

// slotTag is the tag of a key whose table hash is h, in a slot's position.
func slotTag(h uint64) uint32 { return uint32(h>>tagShift) << idBits }

// slotOf is the slot value of id, whose key's table hash is h; never 0,
// since no record has id 0.
func slotOf(id uint32, h uint64) uint32 { return slotTag(h) | id }

// offMem lists the memory a store holds outside the Go heap, so that it
// can be returned to the system when the store becomes unreachable
// (runtime.AddCleanup) without the store itself being kept alive.
type offMem struct {
	chunks [][]byte
	segs   [nsegs][]byte // nil for a segment on the Go heap
	heap   []byte        // nil while the heap is on the Go heap
	index  [][]byte      // the scan index's blocks
}

// size is how many bytes the mappings take outside the Go heap (0 where
// allocOff allocates on it).
func (m *offMem) size() int64 {
	if !offHeapMapped {
		return 0
	}
	n := len(m.heap)
	for _, c := range m.chunks {
		n += len(c)
	}
	for _, s := range m.segs {
		n += len(s)
	}
	for _, b := range m.index {
		n += len(b)
	}
	return int64(n)
}

// release frees the memory; releasing again does nothing.
func (m *offMem) release() {
	for _, c := range m.chunks {
		freeOff(c)
	}
	for _, s := range m.segs {
		freeOff(s)
	}
	freeOff(m.heap)
	for _, b := range m.index {
		freeOff(b)
	}
	*m = offMem{}
}

// store holds the keys: records in chunks outside the Go heap, addressed
// by a uint32 id (0 is never a record), an open-addressing hash table of
// ids from key to record, an expiry heap of ids ordered by deadline, and
// the scan index of ids in (hash, key) order. None of it is
// replicated state: it is derived from the keys, and its ids, table and
// heap layout may differ between replicas without any reply, SCAN
// cursor, snapshot or digest telling them apart (those depend on the keys
// and their states only).
//
// Why outside the Go heap: with a million keys a map of pointers to
// records took 168 bytes of live heap a key, and the collector lets the
// heap grow to twice its live size between cycles, which every cycle
// then walks. The records here (48 bytes), the table (6-11), the heap
// (4) and the scan index's blocks (4-6) are neither scanned nor doubled;
// keys longer than inlineKey and the spans of wide keys are on the Go
// heap.
//
// Its memory is returned to the system when the store becomes
// unreachable: a FlushAll or Restore replaces the store, and a snapshot
// copy still walking the old one (see keyCopy) keeps it alive until done.
type store struct {
	mem  *offMem
	recs [][]record       // views of mem.chunks
	next uint32           // ids below next have been handed out
	free []uint32         // ids of records given back, reused first
	n    int              // live records
	long longKeys         // keys longer than inlineKey
	wide map[uint32]int64 // spans of wide records (metaWide), by id
	segs [nsegs]segment
	heap []uint32 // the expiry heap: a view of mem.heap, or a Go slice
	// index orders the ids by (hash, key) for SCAN's cursor and the
	// snapshot walk. Its id 0 stands for the probe (probeHash, probeKey),
	// a position that is not a record, which ascend sets under probeMu.
	index     *scanIndex
	probeMu   sync.Mutex
	probeHash uint64
	probeKey  string
	// horizon summarizes the ACQUIRE keys' last slots by table hash.
	horizon horizon
}

// segment is one part of the hash table: linear probing over a power of
// two slots, each a record id and its key's tag (slotOf), 0 for empty, at
// most three quarters full.
type segment struct {
	slots []uint32
	n     int
}

func newStore() *store {
	s := &store{mem: &offMem{}, next: 1}
	for i := range s.segs {
		s.segs[i].slots = make([]uint32, minSegSlots)
	}
	s.index = newScanIndex(s.indexHash, s.indexKeyLess, s.mem)
	runtime.AddCleanup(s, func(m *offMem) { m.release() }, s.mem)
	return s
}

// allocU32 returns a zeroed array of n uint32, outside the Go heap when
// large, and the mapping to free (nil when on the Go heap).
func allocU32(n int) ([]uint32, []byte) {
	if n*4 < offHeapMin {
		return make([]uint32, n), nil
	}
	b := allocOff(n * 4)
	return unsafe.Slice((*uint32)(unsafe.Pointer(&b[0])), n), b
}

func (s *store) rec(id uint32) *record {
	return &s.recs[id>>chunkShift][id&(chunkRecords-1)]
}

// keyView is the key of record r (id): for an inline key, a string over
// the record's own bytes, valid only while the record is unchanged; clone
// it before keeping it.
func (s *store) keyView(id uint32, r *record) string {
	n := int(r.meta & metaLen)
	if n == metaLong {
		return s.long.get(r.longSlot(), r.longLen())
	}
	return unsafe.String(&r.key[0], n)
}

// keyLen is the length of record r's (id's) key.
func (s *store) keyLen(id uint32, r *record) int {
	if n := int(r.meta & metaLen); n != metaLong {
		return n
	}
	return r.longLen()
}

// keyOf returns a copy of id's key that may be kept.
func (s *store) keyOf(id uint32) string {
	return strings.Clone(s.keyView(id, s.rec(id)))
}

// span is record r's (id's) span (see keyState.span).
func (s *store) span(id uint32, r *record) int64 {
	if r.meta&metaWide != 0 {
		return s.wide[id]
	}
	return int64(int32(r.ivsp >> 32))
}

// state returns id's state as a keyState, its key copied.
func (s *store) state(id uint32) keyState {
	r := s.rec(id)
	return keyState{key: s.keyOf(id), last: r.last, interval: r.interval(), span: s.span(id, r), cell: r.cell(), hash: r.hash}
}

func (s *store) len() int { return s.n }

// get returns key's id and record, or 0 and nil when it is not held.
func (s *store) get(key string) (uint32, *record) {
	return s.getHashed(key, maphash.String(tableSeed, key))
}

// getHashed is get for a key whose table hash h the caller has.
func (s *store) getHashed(key string, h uint64) (uint32, *record) {
	sg := &s.segs[h>>(64-segBits)]
	mask := uint64(len(sg.slots) - 1)
	tag := slotTag(h)
	for i := h & mask; ; i = (i + 1) & mask {
		v := sg.slots[i]
		if v == 0 {
			return 0, nil
		}
		if v&^idMask != tag {
			continue // another key: its record need not be read
		}
		id := v & idMask
		r := s.rec(id)
		if n := int(r.meta & metaLen); n != metaLong {
			if n == len(key) && unsafe.String(&r.key[0], n) == key {
				return id, r
			}
		} else if r.longHash() == h && r.longLen() == len(key) && s.long.get(r.longSlot(), len(key)) == key {
			return id, r
		}
	}
}

// insert adds key, which the store does not hold, with its state, and
// returns its id.
func (s *store) insert(key string, hash uint64, last, interval, span int64, cell bool) uint32 {
	id := s.add(key, hash, last, interval, span, cell)
	s.heapPush(id)
	s.index.Set(id)
	return id
}

// add makes a record for key and puts it in the table; insert and load
// place it in the heap and the index.
func (s *store) add(key string, hash uint64, last, interval, span int64, cell bool) uint32 {
	var id uint32
	if n := len(s.free); n > 0 {
		id = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		id = s.next
		if id > idMask {
			// Apply refuses a key past maxKeys and Restore an image of
			// more, and the free list is used first, so next-1 is at most
			// the number of keys held.
			panic("fsm: more keys than a table slot's id can hold")
		}
		s.next++
		if int(id>>chunkShift) == len(s.recs) {
			b := allocOff(chunkRecords * int(unsafe.Sizeof(record{})))
			s.mem.chunks = append(s.mem.chunks, b)
			s.recs = append(s.recs, unsafe.Slice((*record)(unsafe.Pointer(&b[0])), chunkRecords))
		}
	}
	r := s.rec(id)
	*r = record{hash: hash, last: last, meta: metaLive}
	s.setTimes(id, r, interval, span, cell)
	th := maphash.String(tableSeed, key)
	if !cell {
		s.horizon.note(th, last)
	}
	if len(key) > inlineKey {
		r.meta |= metaLong
		r.setLong(th, len(key), s.long.add(key))
	} else {
		r.meta |= uint8(len(key))
		copy(r.key[:], key)
	}
	s.tableInsert(id, th)
	s.n++
	return id
}

// remove drops id and frees its record for reuse.
func (s *store) remove(id uint32) {
	r := s.rec(id)
	s.heapRemove(int(r.pos))
	s.tableDelete(id, s.tableHash(id))
	s.index.Delete(id)
	if r.meta&metaLen == metaLong {
		s.long.remove(r.longSlot(), r.longLen())
	}
	if r.meta&metaWide != 0 {
		delete(s.wide, id)
	}
	*r = record{}
	s.free = append(s.free, id)
	s.n--
}

// update sets id's state and moves it to its place in the expiry heap.
func (s *store) update(id uint32, last, interval, span int64, cell bool) {
	r := s.rec(id)
	r.last = last
	if !cell {
		s.horizon.note(s.tableHash(id), last)
	}
	s.setTimes(id, r, interval, span, cell)
	s.heapFix(int(r.pos))
}

// setTimes sets record r's (id's) interval, span and kind.
func (s *store) setTimes(id uint32, r *record, interval, span int64, cell bool) {
	r.meta &^= metaCell
	if cell {
		r.meta |= metaCell
	}
	if narrow(interval, span) {
		if r.meta&metaWide != 0 {
			delete(s.wide, id)
			r.meta &^= metaWide
		}
		r.ivsp = uint64(uint32(interval)) | uint64(uint32(int32(span)))<<32
		return
	}
	if s.wide == nil {
		s.wide = make(map[uint32]int64)
	}
	s.wide[id] = span
	r.meta |= metaWide
	r.ivsp = uint64(interval)
}

// each calls fn with every key held, in id order (not a replicated order).
func (s *store) each(fn func(id uint32, r *record)) {
	for id := uint32(1); id < s.next; id++ {
		if r := s.rec(id); r.meta&metaLive != 0 {
			fn(id, r)
		}
	}
}

// states returns the state of every key held, in id order.
func (s *store) states() []keyState {
	out := make([]keyState, 0, s.n)
	s.each(func(id uint32, _ *record) { out = append(out, s.state(id)) })
	return out
}

func (s *store) segOf(h uint64) *segment { return &s.segs[h>>(64-segBits)] }

// tableInsert puts id, whose key's table hash is h, in the table.
func (s *store) tableInsert(id uint32, h uint64) {
	sg := s.segOf(h)
	if (sg.n+1)*4 > len(sg.slots)*3 {
		s.grow(int(h >> (64 - segBits)))
	}
	place(sg.slots, h, id)
	sg.n++
}

// place puts id, whose key hashes to h, in the first free slot from its
// own, with its tag.
func place(slots []uint32, h uint64, id uint32) {
	mask := uint64(len(slots) - 1)
	i := h & mask
	for slots[i] != 0 {
		i = (i + 1) & mask
	}
	slots[i] = slotOf(id, h)
}

// grow doubles segment i.
func (s *store) grow(i int) {
	sg := &s.segs[i]
	slots, raw := allocU32(2 * len(sg.slots))
	for _, v := range sg.slots {
		if v != 0 {
			id := v & idMask
			place(slots, s.tableHash(id), id)
		}
	}
	freeOff(s.mem.segs[i])
	sg.slots, s.mem.segs[i] = slots, raw
}

// tableHash is the table hash of id's key: kept in the record for a long
// key, computed from the record's bytes for an inline one.
func (s *store) tableHash(id uint32) uint64 {
	r := s.rec(id)
	if n := int(r.meta & metaLen); n != metaLong {
		return maphash.String(tableSeed, unsafe.String(&r.key[0], n))
	}
	return r.longHash()
}

// tableDelete takes id, whose key's table hash is h, out of the table,
// moving back the entries after it that probing would no longer reach.
func (s *store) tableDelete(id uint32, h uint64) {
	sg := s.segOf(h)
	mask := uint64(len(sg.slots) - 1)
	i := h & mask
	for v := slotOf(id, h); sg.slots[i] != v; {
		i = (i + 1) & mask
	}
	sg.slots[i] = 0
	for j := (i + 1) & mask; sg.slots[j] != 0; j = (j + 1) & mask {
		k := s.tableHash(sg.slots[j]&idMask) & mask
		// The entry at j may fill the hole at i if its home slot k is not
		// cyclically within (i, j].
		if (j > i && (k <= i || k > j)) || (j < i && k <= i && k > j) {
			sg.slots[i], sg.slots[j] = sg.slots[j], 0
			i = j
		}
	}
	sg.n--
}

// indexLess is the scan index's order on ids: by hash, then by key. The
// keys are looked at only when the hashes are equal, which is almost never:
// a key longer than a record holds is in a map, and reading it for every
// comparison was a third of an insert's or removal's cost.
func (s *store) indexLess(a, b uint32) bool {
	ha, hb := s.indexHash(a), s.indexHash(b)
	if ha != hb {
		return ha < hb
	}
	return s.indexKey(a) < s.indexKey(b)
}

// indexKeyLess is indexLess's tie-break, for ids of equal hashes.
func (s *store) indexKeyLess(a, b uint32) bool {
	return s.indexKey(a) < s.indexKey(b)
}

func (s *store) indexHash(id uint32) uint64 {
	if id == 0 {
		return s.probeHash
	}
	return s.rec(id).hash
}

func (s *store) indexKey(id uint32) string {
	if id == 0 {
		return s.probeKey
	}
	return s.keyView(id, s.rec(id))
}

// ascend calls fn with the ids in index order from the first at or after
// (hash, key), until fn returns false.
func (s *store) ascend(hash uint64, key string, fn func(id uint32) bool) {
	s.probeMu.Lock()
	defer s.probeMu.Unlock()
	s.probeHash, s.probeKey = hash, key
	s.index.Ascend(0, fn)
	s.probeKey = ""
}

// buildStore makes the store of a restored image, and its accounted
// memory.
func buildStore(img *image) (*store, int64) {
	s := newStore()
	var mem int64
	ids := make([]uint32, 0, len(img.keys)+len(img.cells))
	for _, k := range img.keys {
		// readImage set its hash.
		ids = append(ids, s.add(k.key, k.hash, k.last, k.interval, k.span, false))
		mem += KeyCost(k.key)
	}
	for _, c := range img.cells {
		ids = append(ids, s.add(c.key, keyHash(c.key), c.tat, 0, 0, true))
		mem += KeyCost(c.key)
	}
	for _, id := range ids {
		s.heapAppend(id)
	}
	s.heapInit()
	// Snapshots list the keys in the scan index's order (see keyCopy), and
	// the index loads items in order much faster than it inserts them
	// anywhere; an image in another order (an older snapshot, or one with
	// CL.THROTTLE keys, which come in a list of their own) is sorted first.
	cmp := func(a, b uint32) int {
		switch {
		case s.indexLess(a, b):
			return -1
		case s.indexLess(b, a):
			return 1
		}
		return 0
	}
	if !slices.IsSortedFunc(ids, cmp) {
		slices.SortFunc(ids, cmp)
	}
	for _, id := range ids {
		s.index.Load(id)
	}
	return s, mem
}

// returnMemoryKeys is the image size, in keys, from which a snapshot or a
// restore returns the Go heap's free memory to the system when done.
const returnMemoryKeys = 1 << 16

// returnMemory hands the Go heap's free memory back to the system after a
// snapshot or restore of n keys, if n is at least returnMemoryKeys. A
// million keys decode into, or are copied out as, some 100 MB of Go heap
// that is garbage afterwards; the runtime would keep it mapped until the
// heap grows back to it (which, with the keys outside the heap, it never
// does), so a node would stay at its peak. The forced collection that
// this costs walks only the Go heap, which the store keeps small.
func returnMemory(n int) {
	if n >= returnMemoryKeys {
		debug.FreeOSMemory()
	}
}
