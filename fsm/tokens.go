package fsm

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
// expiry queue.
type tokenStamp struct {
	id tokenID
	at int64
}

// tokenTable remembers the tokens of the commands that took effect in the
// last TokenWindow of cluster time: an ACQUIRE's token with its permit, a
// CANCEL's that gave a reservation back. Denials and CANCELs that gave
// nothing back are not remembered: they changed nothing, so deciding a
// retry of them again cannot take or give back anything twice.
//
// Tokens are added at the cluster clock, which never runs backwards, so
// the queue is in expiry order and pruning pops from its head. Its order
// is the log's, the same on every replica, and snapshots keep it.
type tokenTable struct {
	byID  map[tokenID]Permit
	queue []tokenStamp // queue[head:] is live, oldest first
	head  int
	mem   int64 // sum of TokenCost
}

func newTokenTable() *tokenTable { return &tokenTable{byID: make(map[tokenID]Permit)} }

func (t *tokenTable) get(id tokenID) (Permit, bool) {
	p, ok := t.byID[id]
	return p, ok
}

// add remembers id, applied at cluster time at; id must not be present.
func (t *tokenTable) add(id tokenID, at int64, p Permit) {
	t.byID[id] = p
	t.queue = append(t.queue, tokenStamp{id: id, at: at})
	t.mem += TokenCost(id.key, id.token)
}

// prune forgets the tokens whose window has ended at now.
func (t *tokenTable) prune(now int64) {
	for t.head < len(t.queue) && t.queue[t.head].at+TokenWindow <= now {
		s := t.queue[t.head]
		delete(t.byID, s.id)
		t.mem -= TokenCost(s.id.key, s.id.token)
		t.queue[t.head] = tokenStamp{}
		t.head++
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

// expiredCost is the TokenCost of the tokens whose window has ended at now
// but that no applied entry has pruned yet.
func (t *tokenTable) expiredCost(now int64) int64 {
	var n int64
	for _, s := range t.queue[t.head:] {
		if s.at+TokenWindow > now {
			break
		}
		n += TokenCost(s.id.key, s.id.token)
	}
	return n
}

// live returns the remembered tokens, oldest first.
func (t *tokenTable) live() []tokenStamp { return t.queue[t.head:] }

// tokenRecord is a remembered token in an image (snapshot section
// sectionTokens).
type tokenRecord struct {
	kind       tokenKind
	key, token string
	at         int64
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
