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
// memory beyond the bytes of its key: its map entry (the session and
// number, the key's header, the kind and the permit), its place in the
// expiry queue, averaged over the map's and the queue's growth steps.
// Measured like TokenOverhead: with Go 1.26 on amd64,
// TestSeqCostMatchesHeap finds 149 bytes at 100,000 numbers. (The random
// token a follower added before sessions cost TokenOverhead plus its 22
// bytes, in a string-keyed map and a heap.)
const SeqOverhead = 148

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

// seqStamp is a remembered sequence number in the expiry queue: when it
// was applied (cluster time) and for how long it is remembered (ms).
type seqStamp struct {
	id         seqID
	at, window int64
}

func (s seqStamp) until() int64 { return s.at + s.window }

// seqTable remembers the forwarded commands that took effect (the same
// rule as tokenTable: an ACQUIRE's grant with its permit, a CANCEL that
// gave something back) by session and number, for the window each carries
// in the log. It is what makes a follower's resend after an unknown
// outcome safe without a random token per command: a map with a
// fixed-size key and a queue in apply order, no strings to hash or
// compare but the key of a reuse check.
//
// The queue is in apply order and pruning pops from its head while the
// head's window has ended. A router uses one window for all of its
// session, so the queue is then in expiry order too. If windows differ
// within the queue (two nodes, or one node restarted with other timeouts),
// a number behind one remembered longer is forgotten only when that one
// is: it is remembered longer than asked, which is safe (a resend is
// still answered as the first attempt) and costs only memory, accounted
// until it is dropped. Every replica applies the same entries in the
// same order at the same cluster times, so each forgets at the same
// entry.
type seqTable struct {
	byID  map[seqID]seqResult
	queue []seqStamp // queue[head:] is live, in apply order
	head  int
}

func newSeqTable() seqTable { return seqTable{byID: make(map[seqID]seqResult)} }

// get returns the result remembered for id.
func (t *seqTable) get(id seqID) (seqResult, bool) {
	r, ok := t.byID[id]
	return r, ok
}

// add remembers id, applied at cluster time at, for window ms (0:
// TokenWindow); id must not be present. It returns the SeqCost added.
func (t *seqTable) add(id seqID, at, window int64, r seqResult) int64 {
	if window == 0 {
		window = TokenWindow
	}
	t.byID[id] = r
	t.queue = append(t.queue, seqStamp{id: id, at: at, window: window})
	return SeqCost(r.key)
}

// prune forgets the numbers at the head of the queue whose window has
// ended at now. It returns the SeqCost freed.
func (t *seqTable) prune(now int64) (freed int64) {
	for t.head < len(t.queue) && t.queue[t.head].until() <= now {
		s := t.queue[t.head]
		freed += SeqCost(t.byID[s.id].key)
		delete(t.byID, s.id)
		t.queue[t.head] = seqStamp{}
		t.head++
	}
	// As tokenTable.prune: compact once the dead head is half the queue.
	if t.head > 0 && t.head*2 >= len(t.queue) {
		n := copy(t.queue, t.queue[t.head:])
		clear(t.queue[n:])
		t.queue = t.queue[:n]
		t.head = 0
	}
	return freed
}

// expiredCost is the SeqCost of the numbers that prune(now) would forget.
func (t *seqTable) expiredCost(now int64) int64 {
	var n int64
	for _, s := range t.queue[t.head:] {
		if s.until() > now {
			break
		}
		n += SeqCost(t.byID[s.id].key)
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

// records copies the remembered numbers in queue order.
func (t *seqTable) records() []seqRecord {
	out := make([]seqRecord, 0, len(t.queue)-t.head)
	for _, s := range t.queue[t.head:] {
		r := t.byID[s.id]
		out = append(out, seqRecord{session: s.id.session, seq: s.id.seq, kind: r.kind, key: r.key, at: s.at, window: s.window, permit: r.permit})
	}
	return out
}

// restoreSeqs adds an image's records (checked by validateSeqs) to t, a
// new table.
func (t *tokenTable) restoreSeqs(recs []seqRecord) {
	t.seqs.byID = make(map[seqID]seqResult, len(recs))
	t.seqs.queue = make([]seqStamp, 0, len(recs))
	for _, r := range recs {
		t.mem += t.seqs.add(seqID{r.session, r.seq}, r.at, r.window, seqResult{key: r.key, kind: r.kind, permit: r.permit})
	}
}

// validateSeqs checks an image's sequence numbers: a non-zero session,
// known kinds, valid keys, times between 0 and the clock in apply order
// (never decreasing), windows of 1 to TokenWindow ms, each (session,
// number) once.
func validateSeqs(recs []seqRecord, now int64) error {
	seen := make(map[seqID]struct{}, len(recs))
	var prev int64
	for _, r := range recs {
		switch {
		case r.session == 0:
			return invalidImage("forwarding sequence %d: session 0", r.seq)
		case r.kind != tokenAcquire && r.kind != tokenCancel:
			return invalidImage("forwarding sequence %d: unknown kind %d", r.seq, r.kind)
		case r.key == "" || len(r.key) > MaxKeyLen:
			return invalidImage("forwarding sequence %d: key length %d is outside 1..%d", r.seq, len(r.key), MaxKeyLen)
		case r.at < 0 || r.at > now:
			return invalidImage("forwarding sequence %d: time %d is before 0 or after the clock %d", r.seq, r.at, now)
		case r.at < prev:
			return invalidImage("forwarding sequence %d: time %d is out of order", r.seq, r.at)
		case r.window < 1 || r.window > TokenWindow:
			return invalidImage("forwarding sequence %d: window %d is outside 1..%d", r.seq, r.window, TokenWindow)
		}
		id := seqID{r.session, r.seq}
		if _, dup := seen[id]; dup {
			return invalidImage("forwarding session %016x sequence %d appears twice", r.session, r.seq)
		}
		seen[id] = struct{}{}
		prev = r.at
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
	return len(f.tokens.seqs.byID)
}
