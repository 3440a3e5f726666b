package fsm

import (
	"hash/maphash"
	"iter"
	"math/bits"
	"slices"
	"sort"
	"unsafe"
)

// TokenWindow is how long, in milliseconds of cluster time, a command's
// idempotency token is remembered: a command with the same key and token
// applied within it answers as the first did without acting again (one
// minute: far longer than any client or forwarding retry, short enough to
// bound the memory the tokens hold).
const TokenWindow int64 = 60_000

// TokenOverhead is what one remembered token costs in memory beyond the
// bytes of its key and token: its entry in a chunk (56 bytes), its slot
// in the lookup map averaged over the map's growth steps, its share of
// its chunk, and the slack a chunk's segments are made with. Measured like
// KeyOverhead: with Go 1.26 on amd64, TestTokenCostMatchesHeap finds
// 84-89 bytes (84 with 16-byte tokens, 89 with 64-byte ones: the slack
// grows with the bytes).
const TokenOverhead = 85

// TokenCost is the memory one remembered token is accounted for:
// TokenOverhead plus the bytes of its key and token. Like KeyCost it is a
// function of the replicated state alone, so every replica counts the
// same.
func TokenCost(key, token string) int64 {
	return TokenOverhead + int64(len(key)) + int64(len(token))
}

// tokenKind tells which command a token was given to: an ACQUIRE and a
// CANCEL of the same key may carry the same token (a client naming the
// request it gives back) without one answering for the other.
type tokenKind uint8

const (
	tokenAcquire tokenKind = 1
	tokenCancel  tokenKind = 2
)

// tokenID identifies a remembered token: it is scoped to its key.
type tokenID struct {
	kind       tokenKind
	key, token string
}

// tokenStamp is a token and the cluster time it was applied at, and, for
// a token remembered for less than TokenWindow, for
// how long (window, ms; 0 for TokenWindow).
type tokenStamp struct {
	id     tokenID
	at     int64
	window int64
}

// until is the cluster time at which the token is forgotten.
func (s tokenStamp) until() int64 {
	if s.window == 0 {
		return s.at + TokenWindow
	}
	return s.at + s.window
}

// before orders tokens remembered for a window of their own: by the time
// they are forgotten, then by a total order of the rest, so that every
// replica holds and writes them in the same order.
func (s tokenStamp) before(o tokenStamp) bool {
	switch {
	case s.until() != o.until():
		return s.until() < o.until()
	case s.at != o.at:
		return s.at < o.at
	case s.id.kind != o.id.kind:
		return s.id.kind < o.id.kind
	case s.id.key != o.id.key:
		return s.id.key < o.id.key
	}
	return s.id.token < o.id.token
}

// tokenEntry is a remembered token with what it answers with, in a
// tokenChunk: its key and token are bytes of one of the chunk's segments
// (keyLen bytes from off in segment seg, then tokLen), so that an entry holds no pointer and the garbage
// collector never scans the entries (see tokenTable). It is never changed
// once added, so that a snapshot may read it while Apply goes on (see
// tokenView).
//
// Its 56 bytes make a chunk of 256 entries fit Go's 14,336-byte
// allocation size class (TestTokenEntriesHoldNoPointers).
type tokenEntry struct {
	at                                int64
	wait, validAt, expiresAt, pending int64  // the permit
	window                            uint32 // 0: TokenWindow
	off, keyLen                       uint32
	tokLen                            uint8 // at most MaxTokenLen
	seg                               uint8
	kind                              tokenKind
	granted                           bool
}

// tokenChunkLen is how many tokens a chunk holds at most: small against
// the memory a window's tokens take, large enough that allocating chunks
// costs little per token. A variable so that tests can make chunks of a
// few tokens; it must not change while a table exists, and must stay
// below 1<<refSlotBits.
var tokenChunkLen = 256

// tokenFirstSeg bounds the first segment a chunk makes for its keys and
// tokens, and tokenChunkBytes the others, unless one key and token need
// more.
const (
	tokenFirstSeg   = 32 << 10
	tokenChunkBytes = 1 << 20
)

// tokenSegs is how many segments of bytes a chunk may make: enough for
// tokenChunkLen tokens of the longest keys from a small first segment,
// doubling.
const tokenSegs = 16

// tokenSegLimit is how many of its tokenSegs segments a chunk makes: a
// variable so that tests can make chunks close early.
var tokenSegLimit = tokenSegs

// tokenChunk is a run of entries, either consecutive places in the queue
// (linked to the next run once there is one) or tokens kept for a window
// of their own (see tokenTable.pool). Its segments hold the entries' keys
// and tokens back to back. A segment is made at its full length, before
// the first entry in it, and each of its bytes is written once, when its
// entry is added, so a reader of an entry added before it looked never
// sees a write. A chunk is never reused: a snapshot holding it keeps its
// bytes.
//
// Why segments: the first is sized for a chunk of tokens like the last
// chunk's (tokenTable.perToken), and when the tokens turn out longer each
// next one doubles, so that the bytes a chunk makes but does not use stay
// below what it uses, whatever the lengths of keys: a client cannot make
// the table hold much more than it accounts (TestTokenChunkSlack).
//
// The pointers come first, so that the collector stops reading the
// struct after them; the entries and bytes they point to hold none.
type tokenChunk struct {
	next *tokenChunk // set once, when the next chunk is made
	e    []tokenEntry
	segs [tokenSegs][]byte
	// end is how many places are used, set (before next) when the next
	// chunk is made: a chunk is closed before its places run out when its
	// segments do, which only keys of many KiB make happen.
	end int
	// live counts the tokens of a pool chunk still in the heap; only the
	// table reads it.
	live int
}

// tokenFill is how far the table has written the chunk it fills.
type tokenFill struct {
	n     int // places
	seg   int // the segment being filled
	used  int // its bytes
	bytes int // the bytes of all n tokens
}

// key and token return e's strings: views of c's segment, which are never
// written again, so they may be kept as long as c is.
func (c *tokenChunk) key(e *tokenEntry) string {
	return unsafe.String(unsafe.SliceData(c.segs[e.seg][e.off:]), int(e.keyLen))
}

func (c *tokenChunk) token(e *tokenEntry) string {
	return unsafe.String(unsafe.SliceData(c.segs[e.seg][e.off+e.keyLen:]), int(e.tokLen))
}

func (c *tokenChunk) id(e *tokenEntry) tokenID {
	return tokenID{kind: e.kind, key: c.key(e), token: c.token(e)}
}

func (c *tokenChunk) stamp(e *tokenEntry) tokenStamp {
	return tokenStamp{id: c.id(e), at: e.at, window: int64(e.window)}
}

func (c *tokenChunk) permit(e *tokenEntry) Permit {
	return Permit{Granted: e.granted, WaitMs: e.wait, ValidAt: e.validAt, ExpiresAt: e.expiresAt, Pending: e.pending}
}

// record is e as an image holds it. Its strings are views of c's bytes.
func (c *tokenChunk) record(e *tokenEntry) tokenRecord {
	return tokenRecord{kind: e.kind, key: c.key(e), token: c.token(e), at: e.at, window: int64(e.window), permit: c.permit(e)}
}

// cost is e's TokenCost.
func (e *tokenEntry) cost() int64 {
	return TokenOverhead + int64(e.keyLen) + int64(e.tokLen)
}

// tokenRef is where a token's entry is: the sequence number of its chunk
// (counted from the table's first, separately for the queue's and the
// pool's) and its place in it; refPool marks a chunk of the pool.
type tokenRef uint64

const (
	refSlotBits          = 20
	refPool     tokenRef = 1 << 63
)

func makeRef(seq uint64, slot int) tokenRef {
	return tokenRef(seq<<refSlotBits | uint64(slot))
}

func (r tokenRef) seq() uint64 { return uint64(r&^refPool) >> refSlotBits }
func (r tokenRef) slot() int   { return int(r & (1<<refSlotBits - 1)) }

// tokenHashMask is ANDed into every tokenHash: all ones, but tests narrow
// it to make different tokens' hashes equal.
var tokenHashMask = ^uint64(0)

// tokenHash is the hash by which the table finds id. It is seeded at
// random per process (tableSeed, whose comment says why that is safe and
// wanted): nothing replicated depends on it, since the table never
// iterates its lookup map; the queue's and the heap's orders are all
// anything sees. Its seed keeps a client from choosing tokens that
// collide; collisions are handled anyway (tokenTable.more).
func tokenHash(id tokenID) uint64 {
	k := maphash.String(tableSeed, id.key)
	v := maphash.String(tableSeed, id.token)
	h := (k ^ bits.RotateLeft64(v, 29)) * 0x9e3779b97f4a7c15
	return (h ^ h>>32 ^ uint64(id.kind)) & tokenHashMask
}

// tokenTable remembers the tokens of the commands that took effect in the
// last TokenWindow of cluster time: an ACQUIRE's token with its permit, a
// CANCEL's that gave a reservation back. Denials and CANCELs that gave
// nothing back are not remembered: they changed nothing, so deciding a
// retry of them again cannot take or give back anything twice.
//
// Tokens are added at the cluster clock, which never runs backwards, so
// the queue of tokens kept for TokenWindow is in expiry order and pruning
// pops from its head. Its order is the log's, the same on every replica,
// and snapshots keep it. A token kept for a shorter window of its own (a
// follower's, kept only as long as the follower may resend: see
// Acquire.TokenWindow) is in a min-heap by the time it is forgotten
// instead, since windows differ; its entry is in a chunk of the pool,
// which holds such tokens in the order they were added and is dropped
// once the heap holds none of its tokens.
//
// The queue is a linked list of chunks in which every place, and every
// link, is written once: appending writes the place after the last (or
// links a new chunk), popping only moves the head (a chunk is dropped
// whole once its last place is popped, which is what releases its
// bytes). So a snapshot takes the queue by its first and last chunks and
// bounds (view) rather than by a copy of its tokens, and reads it while
// Apply goes on: Apply never writes a place or link the snapshot reads.
// The heap holds references to pool entries that never change, in chunks
// that a snapshot takes whole and the heap then copies before changing
// (see tokenHeap).
//
// Why nothing here holds a pointer per token: at 10,000 grants a second a
// window is 600,000 tokens, most of a node's heap, and a map keyed by the
// tokens' strings to entries holding them again made the garbage
// collector mark it all on every cycle, on every node (65-90 ms of
// marking a cycle on a 2-core machine, BenchmarkGCWithState/tokens-600k). Entries, the lookup map (whose key
// and value hold no pointer, so the collector skips it) and the heap are
// pointer-free; what is left is a few pointers a chunk.
type tokenTable struct {
	// byHash finds a token by its tokenHash; more holds the further
	// tokens of a hash that byHash already gives to another (a collision:
	// almost never).
	byHash map[uint64]tokenRef
	more   map[uint64][]tokenRef
	// first to last hold the queue: its n tokens, oldest first, from
	// place head of first on; qf tells how far last is written. chunks
	// are first to last again, for finding a ref: chunks[0]'s sequence
	// number is base.
	first, last *tokenChunk
	head        int
	qf          tokenFill
	n           int
	chunks      []*tokenChunk
	base        uint64
	// pool holds the chunks of the tokens in the heap, the one being
	// filled (as pf tells) at the end; a chunk none of whose tokens is in
	// the heap is nil, and dropped from the front. pool[0]'s sequence
	// number is pbase.
	pool  []*tokenChunk
	pbase uint64
	pf    tokenFill
	timed tokenHeap // min-heap by before
	// perToken is the bytes per token of the chunk closed last: the next
	// chunk's first segment is sized for tokenChunkLen such tokens.
	perToken int
	// seqs are the forwarded commands remembered by forwarding session
	// and sequence number instead of a token (see seqTable).
	seqs seqTable
	mem  int64 // sum of TokenCost and of the seqs' SeqCost
}

func newTokenTable() *tokenTable {
	return &tokenTable{byHash: make(map[uint64]tokenRef), more: make(map[uint64][]tokenRef), seqs: newSeqTable()}
}

// entry returns the chunk and entry r refers to.
func (t *tokenTable) entry(r tokenRef) (*tokenChunk, *tokenEntry) {
	var c *tokenChunk
	if r&refPool != 0 {
		c = t.pool[r.seq()-t.pbase]
	} else {
		c = t.chunks[r.seq()-t.base]
	}
	return c, &c.e[r.slot()]
}

// is reports whether r refers to id.
func (t *tokenTable) is(r tokenRef, id tokenID) bool {
	c, e := t.entry(r)
	return e.kind == id.kind && c.key(e) == id.key && c.token(e) == id.token
}

func (t *tokenTable) get(id tokenID) (Permit, bool) {
	h := tokenHash(id)
	r, ok := t.byHash[h]
	if !ok {
		return Permit{}, false
	}
	if !t.is(r, id) {
		ok = false
		for _, m := range t.more[h] {
			if t.is(m, id) {
				r, ok = m, true
				break
			}
		}
		if !ok {
			return Permit{}, false
		}
	}
	c, e := t.entry(r)
	return c.permit(e), true
}

// index makes id, whose hash is h, found at r.
func (t *tokenTable) index(h uint64, r tokenRef) {
	if _, taken := t.byHash[h]; taken {
		t.more[h] = append(t.more[h], r)
		return
	}
	t.byHash[h] = r
}

// unindex forgets that the token of hash h is at r.
func (t *tokenTable) unindex(h uint64, r tokenRef) {
	m := t.more[h]
	if t.byHash[h] == r {
		if len(m) == 0 {
			delete(t.byHash, h)
			return
		}
		t.byHash[h], m = m[len(m)-1], m[:len(m)-1]
	} else if i := slices.Index(m, r); i >= 0 {
		m = slices.Delete(m, i, i+1)
	}
	if len(m) == 0 {
		delete(t.more, h)
	} else {
		t.more[h] = m
	}
}

// indexed is how many tokens the lookup finds.
func (t *tokenTable) indexed() int {
	n := len(t.byHash)
	for _, m := range t.more {
		n += len(m)
	}
	return n
}

// put writes id's entry at the next place of c, which f tells how far
// is written, and reports whether it could: not when c's places are all
// written, nor when its segments are and the last has no room left.
func (t *tokenTable) put(c *tokenChunk, f *tokenFill, id tokenID, at, window int64, p Permit) bool {
	if f.n == len(c.e) {
		return false
	}
	need := len(id.key) + len(id.token)
	s := c.segs[f.seg]
	if f.used+need > len(s) {
		var size int
		switch {
		case s == nil:
			// The first: for tokens like the last chunk's (only the first
			// chunk goes by its first token), with some room for longer
			// ones, but small enough that a chunk of short tokens after
			// long ones wastes little of it.
			per := t.perToken
			if per == 0 {
				per = need
			}
			size = min(len(c.e)*per*17/16, tokenFirstSeg)
		case f.seg+1 == tokenSegLimit:
			return false
		default:
			// Double, but not past what the places left need at this
			// chunk's bytes per token so far.
			f.seg++
			size = min(2*len(s), (len(c.e)-f.n)*((f.bytes+f.n-1)/f.n)*17/16, tokenChunkBytes)
		}
		// The allocation is rounded up to a size class anyway: use it.
		b := slices.Grow([]byte(nil), max(size, need))
		s = b[:cap(b)]
		c.segs[f.seg], f.used = s, 0
	}
	off := f.used
	copy(s[off:], id.key)
	copy(s[off+len(id.key):], id.token)
	c.e[f.n] = tokenEntry{at: at, window: uint32(window), seg: uint8(f.seg), off: uint32(off), keyLen: uint32(len(id.key)), tokLen: uint8(len(id.token)), kind: id.kind,
		granted: p.Granted, wait: p.WaitMs, validAt: p.ValidAt, expiresAt: p.ExpiresAt, pending: p.Pending}
	f.used += need
	f.bytes += need
	f.n++
	return true
}

// closed notes the bytes per token of a chunk filled as f tells, for
// sizing the next.
func (t *tokenTable) closed(f *tokenFill) {
	t.perToken = (f.bytes + f.n - 1) / f.n
}

// add remembers id, applied at cluster time at, for window ms (0 or
// TokenWindow: TokenWindow); id must not be present.
func (t *tokenTable) add(id tokenID, at, window int64, p Permit) {
	t.mem += TokenCost(id.key, id.token)
	h := tokenHash(id)
	if window == 0 || window == TokenWindow {
		if t.last == nil || !t.put(t.last, &t.qf, id, at, 0, p) {
			if t.last != nil {
				t.closed(&t.qf)
			}
			if t.n == 0 && t.last != nil {
				// All popped: drop the chunk rather than link past it.
				t.base += uint64(len(t.chunks))
				clear(t.chunks)
				t.chunks = t.chunks[:0]
				t.first, t.last = nil, nil
			}
			c := &tokenChunk{e: make([]tokenEntry, tokenChunkLen)}
			if t.last == nil {
				t.first, t.head = c, 0
			} else {
				t.last.end = t.qf.n
				t.last.next = c
			}
			t.last, t.qf = c, tokenFill{}
			t.chunks = append(t.chunks, c)
			t.put(c, &t.qf, id, at, 0, p) // a new chunk has room
		}
		t.index(h, makeRef(t.base+uint64(len(t.chunks)-1), t.qf.n-1))
		t.n++
		return
	}
	if len(t.pool) == 0 || !t.put(t.pool[len(t.pool)-1], &t.pf, id, at, window, p) {
		if len(t.pool) > 0 {
			t.closed(&t.pf)
			if t.pool[len(t.pool)-1].live == 0 {
				t.pool[len(t.pool)-1] = nil
				t.trimPool()
			}
		}
		c := &tokenChunk{e: make([]tokenEntry, tokenChunkLen)}
		t.pool, t.pf = append(t.pool, c), tokenFill{}
		t.put(c, &t.pf, id, at, window, p) // a new chunk has room
	}
	c := t.pool[len(t.pool)-1]
	c.live++
	r := refPool | makeRef(t.pbase+uint64(len(t.pool)-1), t.pf.n-1)
	t.index(h, r)
	t.timed.push(r)
	t.up(t.timed.n - 1)
}

// trimPool drops the pool's leading nil chunks.
func (t *tokenTable) trimPool() {
	i := 0
	for i < len(t.pool) && t.pool[i] == nil {
		i++
	}
	t.pool, t.pbase = t.pool[i:], t.pbase+uint64(i)
}

// before reports whether the token at a is forgotten before the one at b
// (tokenStamp.before).
func (t *tokenTable) before(a, b tokenRef) bool {
	ca, ea := t.entry(a)
	cb, eb := t.entry(b)
	return ca.stamp(ea).before(cb.stamp(eb))
}

// up and down restore the heap property of timed after the element at i
// was added or replaced.
func (t *tokenTable) up(i int) {
	h := &t.timed
	for i > 0 {
		p := (i - 1) / 2
		if !t.before(h.get(i), h.get(p)) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (t *tokenTable) down(i int) {
	h := &t.timed
	n := h.n
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && t.before(h.get(r), h.get(l)) {
			m = r
		}
		if !t.before(h.get(m), h.get(i)) {
			return
		}
		h.swap(i, m)
		i = m
	}
}

// heapChunkLen is how many places of the heap a heapChunk holds: a
// snapshot copies a pointer per chunk (about 4,700 at 1.2 million
// tokens), and a heap operation after it copies each chunk it changes
// for the first time (2 KB; one per level of the heap below the first
// eight). BenchmarkSnapshotTokens/own-window finds the Snapshot and the
// Apply after it within noise with chunks of 256 and 1024 places. A
// variable so that tests can make chunks of a few places; it must not
// change while a table exists.
var heapChunkLen = 256

// heapChunk is heapChunkLen consecutive places of a tokenHeap.
type heapChunk struct {
	// epoch is the heap's epoch when the chunk was made: one below the
	// heap's means a snapshot may hold it, so it is never changed again
	// (set changes a copy).
	epoch uint64
	e     []tokenRef
}

// tokenHeap is the array behind the heap of tokens kept for a window of
// their own, in chunks that freeze hands to a snapshot without a copy:
// from then on a chunk is copied before its first change, so the
// snapshot's chunks keep their places as they were.
type tokenHeap struct {
	chunks []*heapChunk
	n      int
	epoch  uint64 // freezes so far
}

func (h *tokenHeap) get(i int) tokenRef { return h.chunks[i/heapChunkLen].e[i%heapChunkLen] }

// set writes place i, copying its chunk first if a snapshot may hold it.
func (h *tokenHeap) set(i int, r tokenRef) {
	c := h.chunks[i/heapChunkLen]
	if c.epoch != h.epoch {
		c = &heapChunk{epoch: h.epoch, e: slices.Clone(c.e)}
		h.chunks[i/heapChunkLen] = c
	}
	c.e[i%heapChunkLen] = r
}

func (h *tokenHeap) swap(i, j int) {
	a, b := h.get(i), h.get(j)
	h.set(i, b)
	h.set(j, a)
}

// push adds r at the end.
func (h *tokenHeap) push(r tokenRef) {
	if h.n == len(h.chunks)*heapChunkLen {
		h.chunks = append(h.chunks, &heapChunk{epoch: h.epoch, e: make([]tokenRef, heapChunkLen)})
	}
	h.set(h.n, r)
	h.n++
}

// pop removes the last place, and its chunk once empty.
func (h *tokenHeap) pop() {
	h.n--
	if h.n%heapChunkLen == 0 {
		h.chunks[len(h.chunks)-1] = nil
		h.chunks = h.chunks[:len(h.chunks)-1]
	}
}

// freeze returns the heap's chunks, which it will not change from now on.
func (h *tokenHeap) freeze() []*heapChunk {
	h.epoch++
	return slices.Clone(h.chunks)
}

// prune forgets the tokens and sequence numbers whose window has ended at
// now.
func (t *tokenTable) prune(now int64) {
	t.mem -= t.seqs.prune(now)
	for t.n > 0 {
		c := t.first
		e := &c.e[t.head]
		if e.at+TokenWindow > now {
			break
		}
		t.unindex(tokenHash(c.id(e)), makeRef(t.base, t.head))
		t.mem -= e.cost()
		t.head++
		t.n--
		switch {
		case c == t.last && t.head == len(c.e):
			// Every place of the only chunk was written and popped.
			t.first, t.last, t.qf = nil, nil, tokenFill{}
		case c != t.last && t.head == c.end:
			t.first = c.next
		default:
			continue
		}
		// The first chunk is done with: drop it (a snapshot may still
		// hold it).
		t.chunks[0] = nil
		t.chunks, t.base, t.head = t.chunks[1:], t.base+1, 0
	}
	for h := &t.timed; h.n > 0; {
		r := h.get(0)
		c, e := t.entry(r)
		if c.stamp(e).until() > now {
			break
		}
		t.unindex(tokenHash(c.id(e)), r)
		t.mem -= e.cost()
		if c.live--; c.live == 0 && c != t.pool[len(t.pool)-1] {
			t.pool[r.seq()-t.pbase] = nil
			t.trimPool()
		}
		h.set(0, h.get(h.n-1))
		h.pop()
		t.down(0)
	}
}

// expiredCost is the TokenCost of the tokens, and the SeqCost of the
// sequence numbers, that prune(now) would forget but that no applied
// entry has pruned yet.
func (t *tokenTable) expiredCost(now int64) int64 {
	n := t.seqs.expiredCost(now)
	for _, e := range t.queue() {
		if e.at+TokenWindow > now {
			break
		}
		n += e.cost()
	}
	// In the heap, a token forgotten later than now has only such tokens
	// below it: walk the part forgotten by now.
	var walk func(i int)
	walk = func(i int) {
		if i >= t.timed.n {
			return
		}
		c, e := t.entry(t.timed.get(i))
		if c.stamp(e).until() > now {
			return
		}
		n += e.cost()
		walk(2*i + 1)
		walk(2*i + 2)
	}
	walk(0)
	return n
}

// tokenView is the tokens of a tokenTable as they were when view was
// called, readable from another goroutine while the table goes on
// changing: the queue's first and last chunks and bounds, whose places
// and links (up to last) the table never writes again, the heap's chunks,
// which it copies before changing, and the pool's chunks that the heap
// refers to, whose entries never change.
type tokenView struct {
	first, last *tokenChunk
	head        int
	n           int
	heap        []*heapChunk
	heapN       int
	pool        []*tokenChunk
	pbase       uint64
	timed       []tokenRef // the heap's tokens in order, once ordered ran
}

// view returns the table's tokens as they are now; it copies a pointer
// per chunk of the heap and of the pool (a few thousand each at a million
// tokens in the heap), never a token (1.2 million tokens took 0.6 to
// 2.8 s to copy, on the goroutine every commit waits for).
func (t *tokenTable) view() *tokenView {
	v := &tokenView{first: t.first, last: t.last, head: t.head, n: t.n, heap: t.timed.freeze(), heapN: t.timed.n, pbase: t.pbase}
	if t.timed.n > 0 {
		v.pool = slices.Clone(t.pool)
	}
	return v
}

// queue yields the tokens kept for TokenWindow, oldest first.
func (t *tokenTable) queue() iter.Seq2[*tokenChunk, *tokenEntry] {
	v := tokenView{first: t.first, last: t.last, head: t.head, n: t.n}
	return v.queue
}

// records copies the tokens in image order (see tokenView.records),
// without freezing anything: for a reader holding the lock throughout.
func (t *tokenTable) records() []tokenRecord {
	v := tokenView{first: t.first, last: t.last, head: t.head, n: t.n, heap: t.timed.chunks, heapN: t.timed.n, pool: t.pool, pbase: t.pbase}
	return v.records()
}

// queue yields the tokens kept for TokenWindow, oldest first, with their
// chunks. It follows a chunk's link, and reads its end, only before last,
// so never one written since the view was taken.
func (v *tokenView) queue(yield func(*tokenChunk, *tokenEntry) bool) {
	c, i := v.first, v.head
	for range v.n {
		if c != v.last && i == c.end {
			c, i = c.next, 0
		}
		if !yield(c, &c.e[i]) {
			return
		}
		i++
	}
}

// entry returns the chunk and entry of r, a ref of the view's heap.
func (v *tokenView) entry(r tokenRef) (*tokenChunk, *tokenEntry) {
	c := v.pool[r.seq()-v.pbase]
	return c, &c.e[r.slot()]
}

// record returns the token at r, a ref of the view's heap.
func (v *tokenView) record(r tokenRef) tokenRecord {
	return v.pool[r.seq()-v.pbase].record(&v.pool[r.seq()-v.pbase].e[r.slot()])
}

// ordered returns the tokens kept for a window of their own, in the order
// they are forgotten (see before): the same order on every replica.
func (v *tokenView) ordered() []tokenRef {
	if v.timed == nil && v.heapN > 0 {
		v.timed = make([]tokenRef, 0, v.heapN)
		for _, c := range v.heap {
			v.timed = append(v.timed, c.e[:min(len(c.e), v.heapN-len(v.timed))]...)
		}
		v.heap = nil
		sort.Slice(v.timed, func(i, j int) bool {
			ca, a := v.entry(v.timed[i])
			cb, b := v.entry(v.timed[j])
			return ca.stamp(a).before(cb.stamp(b))
		})
	}
	return v.timed
}

// records copies the tokens: the queue's, then the heap's in order. The
// records' strings are views of the chunks' bytes.
func (v *tokenView) records() []tokenRecord {
	out := make([]tokenRecord, 0, v.n+v.heapN)
	for c, e := range v.queue {
		out = append(out, c.record(e))
	}
	for _, r := range v.ordered() {
		out = append(out, v.record(r))
	}
	return out
}

// tokenRecord is a remembered token in an image (snapshot section
// sectionTokens).
type tokenRecord struct {
	kind       tokenKind
	key, token string
	at         int64
	window     int64  // 0: TokenWindow (section 2); else section 4
	permit     Permit // for tokenAcquire
}

// Tokens returns how many idempotency tokens the state remembers, expired
// or not (a token is dropped when the next entry is applied after its
// window).
func (f *FSM) Tokens() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.tokens.n + f.tokens.timed.n
}
