package fsm

import (
	"fmt"
	"math"
)

// MaxKeyLen is the longest key accepted, in bytes (64 KiB).
const MaxKeyLen = 64 << 10

// Permit is the answer to THROTTLE.ACQUIRE and THROTTLE.PEEK. All times are
// Unix milliseconds in cluster time; durations are milliseconds.
type Permit struct {
	// Granted reports whether a slot was granted (now or in the future).
	Granted bool
	// WaitMs is, when granted, how long until the slot opens (0: go now);
	// when denied, how long until a call could succeed.
	WaitMs int64
	// ValidAt is the granted slot, or -1 when denied.
	ValidAt int64
	// ExpiresAt is ValidAt plus slop, the last moment the permit may be
	// used, or -1 when denied.
	ExpiresAt int64
	// Pending is the number of granted slots still in the future after
	// this call.
	Pending int64
}

// DefaultSlop is the slop used when a command gives none: a tenth of the
// interval, at least 1 ms.
func DefaultSlop(interval int64) int64 {
	return max(1, interval/10)
}

// MaxTokenLen is the longest idempotency token accepted, in bytes. Every
// token is kept for TokenWindow with its key, so the limit bounds what one
// call can add to the state; 64 bytes holds a UUID, or 32 random bytes in
// hex.
const MaxTokenLen = 64

// slots is the number of consecutive slots the Acquire takes: its Cost, 0
// read as 1.
func (c Acquire) slots() int64 {
	if c.Cost == 0 {
		return 1
	}
	return c.Cost
}

// Validate checks an Acquire's arguments without reference to any state.
// The returned error wraps one of ErrInvalidKey, ErrInvalidInterval,
// ErrInvalidMax, ErrInvalidSlop, ErrInvalidCost, ErrInvalidToken or
// ErrOverflow (the cost times the interval does not fit in int64).
func (c Acquire) Validate() error {
	if err := ValidateKey(c.Key); err != nil {
		return err
	}
	if c.Interval < 1 {
		return fmt.Errorf("interval %d is less than 1: %w", c.Interval, ErrInvalidInterval)
	}
	if c.Max < 0 {
		return fmt.Errorf("max %d is negative: %w", c.Max, ErrInvalidMax)
	}
	if c.Slop < 0 {
		return fmt.Errorf("slop %d is negative: %w", c.Slop, ErrInvalidSlop)
	}
	if c.Cost < 0 {
		return fmt.Errorf("cost %d is negative: %w", c.Cost, ErrInvalidCost)
	}
	if c.slots()-1 > c.Max {
		return fmt.Errorf("cost %d exceeds max+1 (max %d): %w", c.Cost, c.Max, ErrInvalidCost)
	}
	var m checked
	if m.mul(c.slots(), c.Interval); m.overflow {
		return fmt.Errorf("cost %d times interval %d: %w", c.Cost, c.Interval, ErrOverflow)
	}
	if err := ValidateToken(c.Token); err != nil {
		return err
	}
	return ValidateTokenWindow(c.TokenWindow)
}

// ValidateToken reports whether token is acceptable as an idempotency
// token: at most MaxTokenLen bytes (empty means none). The error wraps
// ErrInvalidToken.
func ValidateToken(token string) error {
	if len(token) > MaxTokenLen {
		return fmt.Errorf("token of %d bytes exceeds %d: %w", len(token), MaxTokenLen, ErrInvalidToken)
	}
	return nil
}

// ValidateTokenWindow reports whether window is acceptable as how long a
// token is remembered: 0 (TokenWindow) to TokenWindow ms. The error wraps
// ErrInvalidToken.
func ValidateTokenWindow(window int64) error {
	if window < 0 || window > TokenWindow {
		return fmt.Errorf("token window %d ms is outside 0..%d: %w", window, TokenWindow, ErrInvalidToken)
	}
	return nil
}

// ValidateKey reports whether key is acceptable: non-empty and at most
// MaxKeyLen bytes. The error wraps ErrInvalidKey.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("empty key: %w", ErrInvalidKey)
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("key of %d bytes exceeds %d: %w", len(key), MaxKeyLen, ErrInvalidKey)
	}
	return nil
}

// keyState is the state of one key as a value, apart from the store: in
// snapshot images, and as recorded by a snapshot copy. For a CL.THROTTLE
// key (cell set) last holds its theoretical arrival time (Unix ns), with
// interval 0.
type keyState struct {
	key      string
	last     int64 // newest granted slot; for a cell key, its TAT in ns
	interval int64 // interval it was granted with; 0 for a cell key
	// span is the number of slots the newest grant took after its first
	// (its cost minus one), so that THROTTLE.CANCEL can find its first
	// slot and give all of them back; -1 once given back (the grant
	// before it is not remembered, so it cannot be given back).
	span int64
	cell bool
	hash uint64 // keyHash(key): the key's place in the scan index
}

// decision is the outcome of an acquire before it is applied.
type decision struct {
	permit Permit
	// newLast is the key's new last slot when permit.Granted.
	newLast int64
	// reserved reports a grant of a future slot.
	reserved bool
}

// decide computes THROTTLE.ACQUIRE for state st (nil when the key is absent
// or expired) at cluster time now, changing nothing. It returns ErrOverflow,
// wrapped, if any step would overflow int64.
//
// The rule, for a call of cost n (n consecutive slots, 1 unless COST says
// otherwise) with interval iv: its first slot is now if the key is absent
// or its newest slot is at least iv in the past, else the newest slot plus
// iv; it takes that slot and the n-1 slots iv apart after it. It is
// granted if, after it, at most max of the key's slots are in the future
// (pending, counted as ⌈(last slot - now) / iv⌉), and denied otherwise,
// with the wait after which the same call would be granted. For n = 1 this
// is: go now if the interval has passed, else reserve the next slot if
// fewer than max are pending.
func decide(st *record, c Acquire, now int64) (decision, error) {
	if err := c.Validate(); err != nil {
		return decision{}, err
	}
	var m checked
	iv := c.Interval
	n := c.slots()
	first := now
	if st != nil && now < m.add(st.last, iv) {
		first = st.last + iv
	}
	last := m.add(first, m.mul(n-1, iv))
	var after int64 // slots in the future after a grant
	if last > now {
		after = ceilDiv(last-now, iv)
	}
	if after <= c.Max {
		d := decision{newLast: last, reserved: first > now, permit: Permit{
			Granted:   true,
			WaitMs:    first - now,
			ValidAt:   first,
			ExpiresAt: m.add(first, c.Slop),
			Pending:   after,
		}}
		// Every later computation on this key adds an interval and the slop
		// to last; check now that they fit, so the state never holds a value
		// that could overflow.
		m.add(m.add(last, iv), c.Slop)
		return d, m.result()
	}
	// Denied: st is live and its newest slot less than iv ago (a first
	// slot of now leaves n-1 <= max pending, which Validate ensures). The
	// same call is granted from the moment t at which
	// ⌈(st.last + n·iv - t) / iv⌉ <= max, that is t >= st.last + (n-max)·iv.
	var pending int64
	if st.last > now {
		pending = ceilDiv(st.last-now, iv)
	}
	wait := m.add(st.last, m.mul(n-c.Max, iv)) - now
	d := decision{permit: Permit{WaitMs: wait, ValidAt: -1, ExpiresAt: -1, Pending: pending}}
	return d, m.result()
}

// ceilDiv is ⌈a/b⌉ for a ≥ 0, b > 0, without the overflow of (a+b-1)/b.
func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 {
		q++
	}
	return q
}

// checked accumulates int64 arithmetic and remembers whether any step
// overflowed.
type checked struct{ overflow bool }

func (m *checked) add(a, b int64) int64 {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		m.overflow = true
	}
	return s
}

func (m *checked) mul(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	p := a * b
	if p/b != a || (a == -1 && b == math.MinInt64) || (b == -1 && a == math.MinInt64) {
		m.overflow = true
	}
	return p
}

func (m *checked) result() error {
	if m.overflow {
		return ErrOverflow
	}
	return nil
}
