package fsm

import (
	"errors"
	"fmt"
)

// ErrSequenceReused is returned when a command carries a forwarding
// session and sequence number (Acquire.Session) that the state machine
// remembers for another command: another key, or an ACQUIRE's number on
// a CANCEL or the other way round. A router numbers every command it
// forwards once, so this means a buggy or hostile proposer; the command
// changes nothing rather than answer for a command it is not.
var ErrSequenceReused = errors.New("forwarding sequence number reused for another command")

// SeqOverhead is what one remembered forwarding sequence number costs in
// memory beyond the bytes of its key: its slot in a block (the kind, the
// permit, the time and window, where its key is), and the block's share
// of its map entry and list links. Measured like TokenOverhead, with
// blocks fully used: with Go 1.26 on amd64, TestSeqCostMatchesHeap finds
// 64-65 bytes at 100,000 numbers. A block only partly used (numbers
// denied, never applied, or a session that stopped) costs more than its
// numbers are charged, up to a whole block for one number; only a node's
// router picks numbers, consecutively, never a client, so that is bounded
// by the blocks a window's forwarded load spans.
const SeqOverhead = 65

// SeqCost is the memory one remembered sequence number is accounted for:
// SeqOverhead plus the bytes of its key. Like TokenCost it is a function
// of the replicated state alone, so every replica counts the same.
func SeqCost(key string) int64 { return SeqOverhead + int64(len(key)) }

// seqID names a forwarded command: the forwarding session of the node
// that numbered it and its number in that session.
type seqID struct{ session, seq uint64 }

// seqResult is what a remembered sequence number answers with, and what
// it was given to, so that a reuse for another command is recognised.
type seqResult struct {
	key    string
	kind   tokenKind
	permit Permit // for tokenAcquire
}

// seqBlockSize is how many consecutive numbers of a session a seqBlock
// holds. BenchmarkApplySeq64 is within noise from 64 to 1024; 256 keeps
// a block (about 18 KB) small against a window's load and the block map
// (a few thousand entries at a million numbers) in cache.
const seqBlockSize = 256

// blockID names a seqBlock: a session and its numbers' seq/seqBlockSize.
type blockID struct{ session, n uint64 }

func blockOf(id seqID) (blockID, int) {
	return blockID{id.session, id.seq / seqBlockSize}, int(id.seq % seqBlockSize)
}

// seqSlot is one number's place in a block: empty (kind 0) until a
// command that took effect is remembered under it. An ACQUIRE's permit
// is kept without its Granted flag: only grants are remembered. The key
// is kept in its block's keys, not as a string: a slot holds no pointer,
// so the garbage collector never scans the slots (see seqBlock).
//
// Its 56 bytes make a block fit Go's 16 KiB allocation size class: 64
// bytes a number (TestSeqSlotsHoldNoPointers).
type seqSlot struct {
	at                                int64
	wait, validAt, expiresAt, pending int64  // the permit, for tokenAcquire
	window                            uint32 // at most TokenWindow
	keyOff, keyLen                    uint32 // the key: the block's keys[keyOff:keyOff+keyLen]
	kind                              tokenKind
}

func (s *seqSlot) permit() Permit {
	if s.kind != tokenAcquire {
		return Permit{}
	}
	return Permit{Granted: true, WaitMs: s.wait, ValidAt: s.validAt, ExpiresAt: s.expiresAt, Pending: s.pending}
}

// seqBlock remembers the numbers of one blockID that took effect.
//
// Why the keys are bytes in one slice rather than a string per slot: at
// a million numbers (a window of forwarded load) the table is most of a
// node's heap, and a string per slot made every block a run of pointers
// that each garbage collection cycle had to scan, on every node: the
// mark phase was 9-13% of a node's CPU through a follower at -P 16
// (docs/performance.md, "Session numbers the collector does not scan").
// The pointers come first, so that the collector stops reading a block
// after them.
type seqBlock struct {
	prev, next *seqBlock // in seqTable's expiry list
	// keys holds the slots' keys back to back, in the order they were
	// added. It is this block's alone: thaw copies it, so that a block a
	// snapshot holds never shares bytes that a live block may overwrite
	// once recycled.
	keys []byte
	id   blockID
	// epoch is the table's epoch when the block was made: one below the
	// table's means a snapshot may hold it (see seqTable.freeze), so its
	// slots and counts are never changed again (add changes a copy) and
	// it is never recycled. Its list links are the table's, not the
	// snapshot's, and may change.
	epoch uint64
	until int64 // the latest at+window of its slots
	n     int   // slots set
	cost  int64 // SeqCost of the slots set
	slots [seqBlockSize]seqSlot
}

// key returns the key of slot s of b, a view of b's bytes: valid while
// b is not changed.
func (b *seqBlock) key(s *seqSlot) []byte { return b.keys[s.keyOff : s.keyOff+s.keyLen] }

// seqFreeBlocks is how many emptied blocks a table keeps for reuse: in
// steady load a block is emptied for about every one made, so a few
// spare ones make the table allocate (and page-fault) nothing.
const seqFreeBlocks = 4

// seqFirstKeys bounds the key bytes a block makes room for at its first
// number, and seqKeepKeys those a recycled block keeps for reuse.
const (
	seqFirstKeys = 16 << 10
	seqKeepKeys  = 64 << 10
)

// seqTable remembers the forwarded commands that took effect (the same
// rule as tokenTable: an ACQUIRE's grant with its permit, a CANCEL that
// gave something back) by session and number, for at least the window
// each carries in the log. It is what makes a follower's resend after an
// unknown outcome safe without a random token per command.
//
// A router numbers its session's commands consecutively, so the table
// holds blocks of seqBlockSize consecutive numbers of a session: a
// lookup is one access to a map of a few thousand blocks and an index,
// and nothing is allocated per number.
//
// Expiry is by block: blocks are in a list in the order a number was
// last added to them (a block given a number moves to the tail), a
// block's until is the latest end of its slots' windows, and pruning pops
// blocks from the head while the head's until has passed. A number is
// thus forgotten once its block and every block used before it have
// ended, which is at least its own window: remembered longer than asked,
// which is safe (a resend is still answered as the first attempt) and
// costs only memory, accounted until it is dropped. Ordering by last use
// rather than by creation matters: a quiet session's block, given a
// number now and then, would otherwise stay at the head for as long as
// it takes to fill and hold every busier block behind it; by last use,
// a block waits only for blocks whose last number came before its own,
// so with one window the list is in expiry order, and with several the
// excess is at most the longest window. A number
// applied after its block was dropped (more than a window late, which a
// router's resend horizon of half the window rules out) makes a new
// block at the tail. Every replica applies the same entries in the same
// order at the same cluster times, so each forgets at the same entry.
type seqTable struct {
	blocks map[blockID]*seqBlock
	head   *seqBlock // the expiry list: least recently given a number first
	tail   *seqBlock
	last   *seqBlock   // the block looked up last: the next number is most often in it
	free   []*seqBlock // emptied blocks, kept for reuse
	n      int         // numbers remembered
	epoch  uint64      // freezes so far (see freeze)
}

func newSeqTable() seqTable { return seqTable{blocks: make(map[blockID]*seqBlock)} }

// block returns the live block named id, or nil.
func (t *seqTable) block(id blockID) *seqBlock {
	if t.last != nil && t.last.id == id {
		return t.last
	}
	b := t.blocks[id]
	if b != nil {
		t.last = b
	}
	return b
}

// get returns the result remembered for id.
func (t *seqTable) get(id seqID) (seqResult, bool) {
	bid, i := blockOf(id)
	b := t.block(bid)
	if b == nil || b.slots[i].kind == 0 {
		return seqResult{}, false
	}
	s := &b.slots[i]
	return seqResult{key: string(b.key(s)), kind: s.kind, permit: s.permit()}, true
}

// has reports whether id is remembered. Unlike get it changes nothing
// (not even the last block looked up), so it may be called under the read
// lock.
func (t *seqTable) has(id seqID) bool {
	bid, i := blockOf(id)
	b := t.blocks[bid]
	return b != nil && b.slots[i].kind != 0
}

// add remembers id, applied at cluster time at, for window ms (0:
// TokenWindow); id must not be present. It returns the SeqCost added.
func (t *seqTable) add(id seqID, at, window int64, r seqResult) int64 {
	if window == 0 {
		window = TokenWindow
	}
	bid, i := blockOf(id)
	b := t.block(bid)
	if b == nil {
		if k := len(t.free); k > 0 {
			b, t.free = t.free[k-1], t.free[:k-1]
		} else {
			b = new(seqBlock)
		}
		b.id, b.epoch = bid, t.epoch
		t.blocks[bid] = b
		t.last = b
		t.push(b)
	} else {
		if b.epoch != t.epoch {
			b = t.thaw(b)
		}
		if b != t.tail {
			t.unlink(b)
			t.push(b)
		}
	}
	if b.keys == nil {
		// Sized for a block of keys like this one (most forwarded load
		// has keys of similar lengths), but never more than
		// seqFirstKeys: a long first key must not make the block hold
		// far more than its numbers are accounted for. Appending then
		// at most doubles what the keys use.
		b.keys = make([]byte, 0, min(seqBlockSize*len(r.key), seqFirstKeys))
	}
	off := len(b.keys)
	b.keys = append(b.keys, r.key...)
	p := r.permit
	b.slots[i] = seqSlot{keyOff: uint32(off), keyLen: uint32(len(r.key)), at: at, window: uint32(window), wait: p.WaitMs, validAt: p.ValidAt, expiresAt: p.ExpiresAt, pending: p.Pending, kind: r.kind}
	b.until = max(b.until, at+window)
	b.n++
	c := SeqCost(r.key)
	b.cost += c
	t.n++
	return c
}

// freeze returns the blocks in list order, for a snapshot to write
// later (seqRecordsOf) while Apply goes on: the blocks themselves, not a
// copy of their numbers, so that Snapshot, which every commit waits for,
// costs a pointer per block rather than a record per number (a million
// numbers took 750-870 ms to copy). From here on the table changes a
// copy of a block instead of the block (thaw) and never recycles one
// made before.
func (t *seqTable) freeze() []*seqBlock {
	out := make([]*seqBlock, 0, len(t.blocks))
	for b := t.head; b != nil; b = b.next {
		out = append(out, b)
	}
	t.epoch++
	return out
}

// thaw replaces b, which a snapshot may hold, by a copy that the table
// may change, in the map, the list and the lookup cache, and returns the
// copy.
func (t *seqTable) thaw(b *seqBlock) *seqBlock {
	var c *seqBlock
	if k := len(t.free); k > 0 {
		c, t.free = t.free[k-1], t.free[:k-1]
	} else {
		c = new(seqBlock)
	}
	keys := c.keys[:0] // a recycled block's own bytes, reused
	*c = *b
	c.keys = append(keys, b.keys...)
	c.epoch = t.epoch
	if c.prev != nil {
		c.prev.next = c
	} else {
		t.head = c
	}
	if c.next != nil {
		c.next.prev = c
	} else {
		t.tail = c
	}
	b.prev, b.next = nil, nil
	t.blocks[c.id] = c
	if t.last == b {
		t.last = c
	}
	return c
}

// push puts b, not in the list, at its tail.
func (t *seqTable) push(b *seqBlock) {
	b.prev, b.next = t.tail, nil
	if t.tail != nil {
		t.tail.next = b
	} else {
		t.head = b
	}
	t.tail = b
}

// unlink takes b out of the list.
func (t *seqTable) unlink(b *seqBlock) {
	if b.prev != nil {
		b.prev.next = b.next
	} else {
		t.head = b.next
	}
	if b.next != nil {
		b.next.prev = b.prev
	} else {
		t.tail = b.prev
	}
	b.prev, b.next = nil, nil
}

// prune forgets the blocks at the head of the list whose until has
// passed at now. It returns the SeqCost freed.
func (t *seqTable) prune(now int64) (freed int64) {
	for t.head != nil && t.head.until <= now {
		b := t.head
		t.unlink(b)
		freed += b.cost
		t.n -= b.n
		delete(t.blocks, b.id)
		if t.last == b {
			t.last = nil
		}
		if len(t.free) < seqFreeBlocks && b.epoch == t.epoch {
			// Cleared (an empty slot has kind 0); its key bytes are kept
			// for the next block, unless a rare long key made them large.
			keys := b.keys[:0]
			if cap(keys) > seqKeepKeys {
				keys = nil
			}
			*b = seqBlock{keys: keys}
			t.free = append(t.free, b)
		}
	}
	return freed
}

// expiredCost is the SeqCost of the numbers that prune(now) would forget.
func (t *seqTable) expiredCost(now int64) int64 {
	var n int64
	for b := t.head; b != nil; b = b.next {
		if b.until > now {
			break
		}
		n += b.cost
	}
	return n
}

// seqRecord is a remembered sequence number in an image (snapshot
// section sectionSessions).
type seqRecord struct {
	session, seq uint64
	kind         tokenKind
	key          string
	at, window   int64
	permit       Permit // for tokenAcquire
}

// records copies the remembered numbers: block by block in list order,
// each block's in number order. Adding them in that order makes the same
// blocks in the same order (restoreSeqs).
func (t *seqTable) records() []seqRecord {
	var blocks []*seqBlock
	for b := t.head; b != nil; b = b.next {
		blocks = append(blocks, b)
	}
	return seqRecordsOf(blocks, t.n)
}

// seqRecordsOf lists the numbers in blocks (n of them, a capacity hint),
// block by block, each block's in number order.
func seqRecordsOf(blocks []*seqBlock, n int) []seqRecord {
	out := make([]seqRecord, 0, n)
	for _, b := range blocks {
		for i := range b.slots {
			s := &b.slots[i]
			if s.kind == 0 {
				continue
			}
			out = append(out, seqRecord{session: b.id.session, seq: b.id.n*seqBlockSize + uint64(i), kind: s.kind, key: string(b.key(s)), at: s.at, window: int64(s.window), permit: s.permit()})
		}
	}
	return out
}

// restoreSeqs adds an image's records (checked by validateSeqs) to t, a
// new table.
func (t *tokenTable) restoreSeqs(recs []seqRecord) {
	for _, r := range recs {
		t.mem += t.seqs.add(seqID{r.session, r.seq}, r.at, r.window, seqResult{key: r.key, kind: r.kind, permit: r.permit})
	}
}

// validateSeqs checks an image's sequence numbers: a non-zero session,
// known kinds, valid keys, times between 0 and the clock, windows of 1 to
// TokenWindow ms, and the order records writes: each block's numbers
// together and rising, each block once, and blocks in the order they were
// last given a number, so that no block's latest time is before the
// latest of the block before it (the clock never runs backwards, and a
// block's last number is its latest).
func validateSeqs(recs []seqRecord, now int64) error {
	seen := make(map[blockID]struct{})
	var cur blockID
	var prevSeq uint64
	var latest, prevLatest int64 // latest time of the current and previous block
	for i, r := range recs {
		switch {
		case r.session == 0:
			return invalidImage("forwarding sequence %d: session 0", r.seq)
		case r.kind != tokenAcquire && r.kind != tokenCancel:
			return invalidImage("forwarding sequence %d: unknown kind %d", r.seq, r.kind)
		case r.key == "" || len(r.key) > MaxKeyLen:
			return invalidImage("forwarding sequence %d: key length %d is outside 1..%d", r.seq, len(r.key), MaxKeyLen)
		case r.at < 0 || r.at > now:
			return invalidImage("forwarding sequence %d: time %d is before 0 or after the clock %d", r.seq, r.at, now)
		case r.window < 1 || r.window > TokenWindow:
			return invalidImage("forwarding sequence %d: window %d is outside 1..%d", r.seq, r.window, TokenWindow)
		}
		bid, _ := blockOf(seqID{r.session, r.seq})
		if i == 0 || bid != cur {
			if _, dup := seen[bid]; dup {
				return invalidImage("forwarding session %016x sequence %d: its block appears twice", r.session, r.seq)
			}
			seen[bid] = struct{}{}
			if i > 0 && latest < prevLatest {
				return invalidImage("forwarding sequence %d: its block's latest time %d is before its predecessor's %d", prevSeq, latest, prevLatest)
			}
			cur, prevLatest, latest = bid, latest, r.at
		} else if r.seq <= prevSeq {
			return invalidImage("forwarding session %016x sequence %d: out of order or appears twice", r.session, r.seq)
		}
		latest = max(latest, r.at)
		prevSeq = r.seq
	}
	if len(recs) > 0 && latest < prevLatest {
		return invalidImage("forwarding sequence %d: its block's latest time %d is before its predecessor's %d", prevSeq, latest, prevLatest)
	}
	return nil
}

// sequenced reports whether an ACQUIRE or CANCEL is identified by a
// forwarding session rather than a token: the client's own token, when it
// has one, wins (see Acquire.Session).
func sequenced(token string, session uint64) bool { return token == "" && session != 0 }

// seqSeen looks up a sequenced command of kind on key: whether it was
// applied before, with what result, or an ErrSequenceReused result when
// its number was given to another command.
func (f *FSM) seqSeen(id seqID, kind tokenKind, key string) (Result, bool) {
	r, ok := f.tokens.seqs.get(id)
	switch {
	case !ok:
		return Result{}, false
	case r.kind != kind || r.key != key:
		return Result{Err: fmt.Errorf("%w: session %016x sequence %d", ErrSequenceReused, id.session, id.seq)}, true
	case kind == tokenCancel:
		return Result{Count: 1}, true
	}
	return Result{Permit: r.permit}, true
}

// rememberSeq records a sequenced command of kind on key that took
// effect, applied now, for window ms; f.mu is held.
func (f *FSM) rememberSeq(id seqID, kind tokenKind, key string, window int64, p Permit) {
	f.tokens.mem += f.tokens.seqs.add(id, f.now, window, seqResult{key: key, kind: kind, permit: p})
}

// Sequences returns how many forwarding sequence numbers the state
// remembers, expired or not (as Tokens).
func (f *FSM) Sequences() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.tokens.seqs.n
}
