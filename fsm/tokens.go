package fsm

import (
	"iter"
	"slices"
	"sort"
)

// TokenWindow is how long, in milliseconds of cluster time, a command's
// idempotency token is remembered: a command with the same key and token
// applied within it answers as the first did without acting again (one
// minute: far longer than any client or forwarding retry, short enough to
// bound the memory the tokens hold).
const TokenWindow int64 = 60_000

// TokenOverhead is what one remembered token costs in memory beyond the
// bytes of its key and token: its map entry, its place in the expiry
// queue and the rounding of its strings to allocation sizes, averaged over
// the map's and the queue's growth steps. Measured like KeyOverhead: with
// Go 1.26 on amd64, TestTokenCostMatchesHeap finds 179-191 bytes with the
// queue in chunks (181-193 with the queue as one slice, in the same run).
const TokenOverhead = 176

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

// tokenEntry is a remembered token with what it answers with. It is
// never changed once added, so that a snapshot may read it while Apply
// goes on (see tokenView).
type tokenEntry struct {
	tokenStamp
	permit Permit
}

// record is e as an image holds it.
func (e *tokenEntry) record() tokenRecord {
	return tokenRecord{kind: e.id.kind, key: e.id.key, token: e.id.token, at: e.at, window: e.window, permit: e.permit}
}

// tokenChunkLen is how many tokens a chunk of the queue holds: small
// against the memory a window's tokens take (a chunk is 24 KB), large
// enough that allocating chunks costs little per token. A variable so
// that tests can make chunks of a few tokens; it must not change while a
// table exists.
var tokenChunkLen = 256

// tokenChunk is a run of tokenChunkLen consecutive places in the queue,
// linked to the next run once there is one.
type tokenChunk struct {
	e    []tokenEntry
	next *tokenChunk // set once, when the next chunk is made
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
// instead, since windows differ.
//
// The queue is a linked list of chunks in which every place, and every
// link, is written once: appending writes the place after the last (or
// links a new chunk), popping only moves the head (a chunk is dropped
// whole once its last place is popped, which is what releases its
// strings). So a snapshot takes the queue by its first chunk and bounds
// (view) rather than by a copy of its tokens, and reads it while Apply
// goes on: Apply never writes a place or link the snapshot reads. The heap
// holds pointers to entries that never change, in chunks that a snapshot
// takes whole and the heap then copies before changing (see tokenHeap).
type tokenTable struct {
	byID map[tokenID]*tokenEntry
	// first to last hold the queue: its n tokens, oldest first, from
	// place head of first on; fill places of last are written.
	first, last *tokenChunk
	head, fill  int
	n           int
	timed       tokenHeap // min-heap by before
	// seqs are the forwarded commands remembered by forwarding session
	// and sequence number instead of a token (see seqTable).
	seqs seqTable
	mem  int64 // sum of TokenCost and of the seqs' SeqCost
}

func newTokenTable() *tokenTable {
	return &tokenTable{byID: make(map[tokenID]*tokenEntry), seqs: newSeqTable()}
}

func (t *tokenTable) get(id tokenID) (Permit, bool) {
	e, ok := t.byID[id]
	if !ok {
		return Permit{}, false
	}
	return e.permit, true
}

// add remembers id, applied at cluster time at, for window ms (0 or
// TokenWindow: TokenWindow); id must not be present.
func (t *tokenTable) add(id tokenID, at, window int64, p Permit) {
	t.mem += TokenCost(id.key, id.token)
	if window == 0 || window == TokenWindow {
		if t.last == nil || t.fill == len(t.last.e) {
			c := &tokenChunk{e: make([]tokenEntry, tokenChunkLen)}
			if t.last == nil {
				t.first, t.head = c, 0
			} else {
				t.last.next = c
			}
			t.last, t.fill = c, 0
		}
		e := &t.last.e[t.fill]
		*e = tokenEntry{tokenStamp: tokenStamp{id: id, at: at}, permit: p}
		t.fill++
		t.n++
		t.byID[id] = e
		return
	}
	e := &tokenEntry{tokenStamp: tokenStamp{id: id, at: at, window: window}, permit: p}
	t.byID[id] = e
	t.timed.push(e)
	t.up(t.timed.n - 1)
}

// up and down restore the heap property of timed after the element at i
// was added or replaced.
func (t *tokenTable) up(i int) {
	h := &t.timed
	for i > 0 {
		p := (i - 1) / 2
		if !h.get(i).before(h.get(p).tokenStamp) {
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
		if r := l + 1; r < n && h.get(r).before(h.get(l).tokenStamp) {
			m = r
		}
		if !h.get(m).before(h.get(i).tokenStamp) {
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
	e     []*tokenEntry
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

func (h *tokenHeap) get(i int) *tokenEntry { return h.chunks[i/heapChunkLen].e[i%heapChunkLen] }

// set writes place i, copying its chunk first if a snapshot may hold it.
func (h *tokenHeap) set(i int, e *tokenEntry) {
	c := h.chunks[i/heapChunkLen]
	if c.epoch != h.epoch {
		c = &heapChunk{epoch: h.epoch, e: slices.Clone(c.e)}
		h.chunks[i/heapChunkLen] = c
	}
	c.e[i%heapChunkLen] = e
}

func (h *tokenHeap) swap(i, j int) {
	a, b := h.get(i), h.get(j)
	h.set(i, b)
	h.set(j, a)
}

// push adds e at the end.
func (h *tokenHeap) push(e *tokenEntry) {
	if h.n == len(h.chunks)*heapChunkLen {
		h.chunks = append(h.chunks, &heapChunk{epoch: h.epoch, e: make([]*tokenEntry, heapChunkLen)})
	}
	h.set(h.n, e)
	h.n++
}

// pop removes the last place, and its chunk once empty.
func (h *tokenHeap) pop() {
	h.n--
	if h.n%heapChunkLen == 0 {
		h.chunks[len(h.chunks)-1] = nil
		h.chunks = h.chunks[:len(h.chunks)-1]
		return
	}
	h.set(h.n, nil) // so that the entry is released
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
		e := &t.first.e[t.head]
		if e.at+TokenWindow > now {
			break
		}
		delete(t.byID, e.id)
		t.mem -= TokenCost(e.id.key, e.id.token)
		t.head++
		t.n--
		if t.head == len(t.first.e) {
			// Every place of the first chunk was written and popped: drop
			// it (a snapshot may still hold it).
			if t.first == t.last {
				t.first, t.last, t.fill = nil, nil, 0
			} else {
				t.first = t.first.next
			}
			t.head = 0
		}
	}
	for h := &t.timed; h.n > 0 && h.get(0).until() <= now; {
		e := h.get(0)
		delete(t.byID, e.id)
		t.mem -= TokenCost(e.id.key, e.id.token)
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
	for e := range t.queue() {
		if e.at+TokenWindow > now {
			break
		}
		n += TokenCost(e.id.key, e.id.token)
	}
	// In the heap, a token forgotten later than now has only such tokens
	// below it: walk the part forgotten by now.
	var walk func(i int)
	walk = func(i int) {
		if i >= t.timed.n || t.timed.get(i).until() > now {
			return
		}
		e := t.timed.get(i)
		n += TokenCost(e.id.key, e.id.token)
		walk(2*i + 1)
		walk(2*i + 2)
	}
	walk(0)
	return n
}

// tokenView is the tokens of a tokenTable as they were when view was
// called, readable from another goroutine while the table goes on
// changing: the queue's first chunk and bounds, whose places and links
// the table never writes again, and the heap's chunks, which it copies
// before changing.
type tokenView struct {
	first *tokenChunk
	head  int
	n     int
	heap  []*heapChunk
	heapN int
	timed []*tokenEntry // the heap's entries in order, once ordered ran
}

// view returns the table's tokens as they are now; it copies a pointer
// per chunk of the heap (a few thousand at a million tokens in it), never
// a token (1.2 million tokens took 0.6 to 2.8 s to copy, on the goroutine
// every commit waits for).
func (t *tokenTable) view() *tokenView {
	return &tokenView{first: t.first, head: t.head, n: t.n, heap: t.timed.freeze(), heapN: t.timed.n}
}

// queue yields the tokens kept for TokenWindow, oldest first.
func (t *tokenTable) queue() iter.Seq[*tokenEntry] {
	v := tokenView{first: t.first, head: t.head, n: t.n}
	return v.queue
}

// records copies the tokens in image order (see tokenView.records),
// without freezing anything: for a reader holding the lock throughout.
func (t *tokenTable) records() []tokenRecord {
	v := tokenView{first: t.first, head: t.head, n: t.n, heap: t.timed.chunks, heapN: t.timed.n}
	return v.records()
}

// queue yields the tokens kept for TokenWindow, oldest first.
// It follows a chunk's link only to read a place that was written when
// the view was taken, so never a link written since.
func (v *tokenView) queue(yield func(*tokenEntry) bool) {
	c, i := v.first, v.head
	for range v.n {
		if i == len(c.e) {
			c, i = c.next, 0
		}
		if !yield(&c.e[i]) {
			return
		}
		i++
	}
}

// ordered returns the tokens kept for a window of their own, in the order
// they are forgotten (see before): the same order on every replica.
func (v *tokenView) ordered() []*tokenEntry {
	if v.timed == nil && v.heapN > 0 {
		v.timed = make([]*tokenEntry, 0, v.heapN)
		for _, c := range v.heap {
			v.timed = append(v.timed, c.e[:min(len(c.e), v.heapN-len(v.timed))]...)
		}
		v.heap = nil
		sort.Slice(v.timed, func(i, j int) bool { return v.timed[i].before(v.timed[j].tokenStamp) })
	}
	return v.timed
}

// records copies the tokens: the queue's, then the heap's in order.
func (v *tokenView) records() []tokenRecord {
	out := make([]tokenRecord, 0, v.n+v.heapN)
	for e := range v.queue {
		out = append(out, e.record())
	}
	for _, e := range v.ordered() {
		out = append(out, e.record())
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
	return len(f.tokens.byID)
}
