package server

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/throttledb/throttledb/fsm"
)

var (
	// ErrOOM is returned when a command would create a key while the state
	// is at Config.MaxMemory. Clients see Redis's "OOM command not allowed
	// when used memory > 'maxmemory'.".
	ErrOOM = errors.New("maxmemory reached")
	// ErrInvalidMemory is returned by ParseMemory for a size it cannot read.
	ErrInvalidMemory = errors.New("invalid memory size")
)

// msgOOM is Redis's reply to a command refused by maxmemory, word for word.
const msgOOM = "OOM command not allowed when used memory > 'maxmemory'."

// msgExecOOM is Redis's reply to EXEC when the transaction holds a command
// maxmemory refuses: the whole transaction is discarded.
const msgExecOOM = "EXECABORT Transaction discarded because of: " + msgOOM

// ParseMemory reads a memory size the way Redis reads maxmemory: a decimal
// count of bytes, optionally followed by a unit, case-insensitive: b (1),
// k (1000), kb (1024), m (1000²), mb (1024²), g (1000³), gb (1024³). So
// "100mb" is 104857600. No sign, spaces or fractions; the result must fit
// an int64. Errors wrap ErrInvalidMemory.
func ParseMemory(s string) (int64, error) {
	isDigit := func(r rune) bool { return r >= '0' && r <= '9' }
	end := strings.IndexFunc(s, func(r rune) bool { return !isDigit(r) })
	if end < 0 {
		end = len(s)
	}
	digits, unit := s[:end], s[end:]
	var mul int64
	// ASCII only: strings.ToLower would also turn the Kelvin sign into k.
	switch asciiLower(unit) {
	case "", "b":
		mul = 1
	case "k":
		mul = 1000
	case "kb":
		mul = 1 << 10
	case "m":
		mul = 1000 * 1000
	case "mb":
		mul = 1 << 20
	case "g":
		mul = 1000 * 1000 * 1000
	case "gb":
		mul = 1 << 30
	}
	if mul == 0 || digits == "" {
		return 0, fmt.Errorf("%w: %q (want bytes, or a number with k, kb, m, mb, g or gb)", ErrInvalidMemory, s)
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > math.MaxInt64/mul {
		return 0, fmt.Errorf("%w: %q is too large", ErrInvalidMemory, s)
	}
	return n * mul, nil
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// memGate enforces Config.MaxMemory at the door: the proposer asks it about
// every proposal before the proposal joins a log entry (see proposer.run),
// so that every route to the log (a single command, a pipeline, a
// transaction, forwarded or not) passes the same check on the leader.
//
// What is measured: the state machine's own accounting of its live keys
// and idempotency tokens and forwarding session numbers (fsm.MemoryUsage,
// fsm.KeyCost, fsm.TokenCost, fsm.SeqCost),
// not the Go heap. The heap includes
// garbage the collector has not yet freed, Raft's log cache and connection
// buffers, so it rises and falls with load rather than with the state; a
// limit on it would refuse keys at random moments. The accounting is
// deterministic, so the figure INFO reports is the same on every node.
//
// Apply never refuses anything (it must stay deterministic, and a replica
// cannot refuse an entry the others applied): this gate is the only check.
// So followers never refuse, a node's limit applies only while it leads,
// and the state can exceed the limit when a leader with a higher limit (or
// none) or a RAFT.RESTORE put it there; then new keys are refused until
// expiry and THROTTLE.RESET bring it down.
type memGate struct {
	limit int64
	fsm   *fsm.FSM
	clock func() int64 // cluster time as the proposer stamps it

	// pending counts, per key, the admitted proposals that would create
	// it and whose entries have not been applied yet (released in
	// proposer.submit once Raft answers). Without it, the keys of
	// entries in flight would not count against the limit and the state
	// could overshoot it by every entry in flight. pendingBytes is their
	// KeyCost, each key once.
	mu           sync.Mutex
	pending      map[string]int
	pendingBytes int64
}

func newMemGate(limit int64, f *fsm.FSM, clock func() int64) *memGate {
	return &memGate{limit: limit, fsm: f, clock: clock, pending: make(map[string]int)}
}

// admit decides whether cmds (one proposal) may go into the log. Commands
// that create no key (an ACQUIRE or CL.THROTTLE on an existing key, RESET,
// FLUSHALL, membership changes) are always admitted; a proposal that would create keys is
// admitted only if the live state, plus the keys of entries in flight,
// plus its new keys, stays within the limit. A proposal is admitted or
// refused whole: a transaction is never split. On admission it returns the
// keys it counted as pending, for release once the entry is applied.
func (g *memGate) admit(cmds []fsm.Command) ([]string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.clock()
	var (
		keys []string
		add  int64
		seen map[string]bool // a transaction may hold a key many times
	)
	for _, c := range cmds {
		key, ok := createsKey(c)
		if !ok || seen[key] {
			continue
		}
		if len(cmds) > 1 {
			if seen == nil {
				seen = make(map[string]bool)
			}
			seen[key] = true
		}
		switch {
		case g.pending[key] > 0:
			// Created by an entry in flight: already counted, but
			// hold it pending until this entry too is applied.
			keys = append(keys, key)
		case !g.fsm.Exists(key, now):
			keys = append(keys, key)
			add += fsm.KeyCost(key)
			if a, ok := c.(fsm.Acquire); ok && a.Token != "" {
				// Its token is remembered for fsm.TokenWindow too.
				add += fsm.TokenCost(a.Key, a.Token)
			} else if ok && a.Session != 0 {
				// A forwarded call's session number is remembered for
				// its window.
				add += fsm.SeqCost(a.Key)
			}
		}
	}
	if add > 0 {
		used := g.fsm.MemoryUsage(now) + g.pendingBytes
		if used+add > g.limit {
			return nil, fmt.Errorf("%w: the state uses %d bytes (with entries in flight), new keys need %d, maxmemory is %d", ErrOOM, used, add, g.limit)
		}
	}
	for _, k := range keys {
		if g.pending[k] == 0 {
			g.pendingBytes += fsm.KeyCost(k)
		}
		g.pending[k]++
	}
	return keys, nil
}

// release forgets keys that admit counted as pending: their entry has been
// applied (they are in the state now, and MemoryUsage counts them) or will
// never be.
func (g *memGate) release(keys []string) {
	if len(keys) == 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, k := range keys {
		if g.pending[k]--; g.pending[k] <= 0 {
			delete(g.pending, k)
			g.pendingBytes -= fsm.KeyCost(k)
		}
	}
}
