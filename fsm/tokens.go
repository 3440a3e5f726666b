package fsm

import "sort"

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
// Go 1.26 on amd64, TestTokenCostMatchesHeap finds 172-184 bytes.
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

// tokenStamp is a token and the cluster time it was applied at, in the
// expiry queue, and, for a token remembered for less than TokenWindow, for
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
type tokenTable struct {
	byID  map[tokenID]Permit
	queue []tokenStamp // queue[head:] is live, oldest first
	head  int
	timed []tokenStamp // min-heap by before
	// seqs are the forwarded commands remembered by forwarding session
	// and sequence number instead of a token (see seqTable).
	seqs seqTable
	mem  int64 // sum of TokenCost and of the seqs' SeqCost
}

func newTokenTable() *tokenTable {
	return &tokenTable{byID: make(map[tokenID]Permit), seqs: newSeqTable()}
}

func (t *tokenTable) get(id tokenID) (Permit, bool) {
	p, ok := t.byID[id]
	return p, ok
}

// add remembers id, applied at cluster time at, for window ms (0 or
// TokenWindow: TokenWindow); id must not be present.
func (t *tokenTable) add(id tokenID, at, window int64, p Permit) {
	t.byID[id] = p
	t.mem += TokenCost(id.key, id.token)
	if window == 0 || window == TokenWindow {
		t.queue = append(t.queue, tokenStamp{id: id, at: at})
		return
	}
	t.timed = append(t.timed, tokenStamp{id: id, at: at, window: window})
	t.up(len(t.timed) - 1)
}

// up and down restore the heap property of timed after the element at i
// was added or replaced.
func (t *tokenTable) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !t.timed[i].before(t.timed[p]) {
			return
		}
		t.timed[i], t.timed[p] = t.timed[p], t.timed[i]
		i = p
	}
}

func (t *tokenTable) down(i int) {
	n := len(t.timed)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && t.timed[r].before(t.timed[l]) {
			m = r
		}
		if !t.timed[m].before(t.timed[i]) {
			return
		}
		t.timed[i], t.timed[m] = t.timed[m], t.timed[i]
		i = m
	}
}

// prune forgets the tokens and sequence numbers whose window has ended at
// now.
func (t *tokenTable) prune(now int64) {
	t.mem -= t.seqs.prune(now)
	for t.head < len(t.queue) && t.queue[t.head].at+TokenWindow <= now {
		s := t.queue[t.head]
		delete(t.byID, s.id)
		t.mem -= TokenCost(s.id.key, s.id.token)
		t.queue[t.head] = tokenStamp{}
		t.head++
	}
	for len(t.timed) > 0 && t.timed[0].until() <= now {
		s := t.timed[0]
		delete(t.byID, s.id)
		t.mem -= TokenCost(s.id.key, s.id.token)
		last := len(t.timed) - 1
		t.timed[0] = t.timed[last]
		t.timed[last] = tokenStamp{}
		t.timed = t.timed[:last]
		t.down(0)
	}
	// Compact once the dead head is at least half the queue, so that the
	// queue's memory stays proportional to the live tokens at amortised
	// O(1) per token.
	if t.head > 0 && t.head*2 >= len(t.queue) {
		n := copy(t.queue, t.queue[t.head:])
		clear(t.queue[n:])
		t.queue = t.queue[:n]
		t.head = 0
	}
}

// expiredCost is the TokenCost of the tokens, and the SeqCost of the
// sequence numbers, that prune(now) would forget but that no applied
// entry has pruned yet.
func (t *tokenTable) expiredCost(now int64) int64 {
	n := t.seqs.expiredCost(now)
	for _, s := range t.queue[t.head:] {
		if s.at+TokenWindow > now {
			break
		}
		n += TokenCost(s.id.key, s.id.token)
	}
	// In the heap, a token forgotten later than now has only such tokens
	// below it: walk the part forgotten by now.
	var walk func(i int)
	walk = func(i int) {
		if i >= len(t.timed) || t.timed[i].until() > now {
			return
		}
		n += TokenCost(t.timed[i].id.key, t.timed[i].id.token)
		walk(2*i + 1)
		walk(2*i + 2)
	}
	walk(0)
	return n
}

// live returns the tokens remembered for TokenWindow, oldest first, then
// those remembered for a window of their own, in the order they are
// forgotten (see before): the same order on every replica.
func (t *tokenTable) live() []tokenStamp {
	out := make([]tokenStamp, 0, len(t.queue)-t.head+len(t.timed))
	out = append(out, t.queue[t.head:]...)
	timed := append([]tokenStamp(nil), t.timed...)
	sort.Slice(timed, func(i, j int) bool { return timed[i].before(timed[j]) })
	return append(out, timed...)
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
