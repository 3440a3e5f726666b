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

// Validate checks an Acquire's arguments without reference to any state.
// The returned error wraps one of ErrInvalidKey, ErrInvalidInterval,
// ErrInvalidMax or ErrInvalidSlop.
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

// keyState is the state of one key: a THROTTLE.ACQUIRE throttle, or, when
// cell is set, a CL.THROTTLE limiter whose theoretical arrival time (Unix
// ns) is held in last, with interval 0.
type keyState struct {
	key      string
	last     int64 // newest granted slot; for a cell key, its TAT in ns
	interval int64 // interval it was granted with; 0 for a cell key
	index    int   // position in the expiry heap
	cell     bool
	hash     uint64 // keyHash(key): the key's place in the scan index
}

// deadline is when the key expires (Unix ms) and becomes indistinguishable
// from an absent key. Grants check that it fits in int64 (see decide). A
// cell key lives while cluster time, in ns, is before its TAT: until the
// first millisecond at or after it.
func (k *keyState) deadline() int64 {
	if k.cell {
		return ceilDiv(k.last, nsPerMs)
	}
	return k.last + k.interval
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
func decide(st *keyState, c Acquire, now int64) (decision, error) {
	if err := c.Validate(); err != nil {
		return decision{}, err
	}
	var m checked
	iv := c.Interval
	if st == nil || now >= m.add(st.last, iv) {
		// Absent, expired, or the call's own interval has passed: go now.
		d := decision{newLast: now, permit: Permit{Granted: true, ValidAt: now}}
		d.permit.ExpiresAt = m.add(now, c.Slop)
		// Every later computation on this key adds an interval and the slop
		// to last; check now that they fit, so the state never holds a value
		// that could overflow.
		m.add(m.add(now, iv), c.Slop)
		return d, m.result()
	}
	last := st.last
	var pending int64 // granted slots still in the future
	if last > now {
		pending = ceilDiv(last-now, iv)
	}
	if pending < c.Max {
		slot := m.add(last, iv)
		d := decision{newLast: slot, reserved: slot > now, permit: Permit{
			Granted:   true,
			WaitMs:    slot - now,
			ValidAt:   slot,
			ExpiresAt: m.add(slot, c.Slop),
			Pending:   ceilDiv(slot-now, iv),
		}}
		m.add(m.add(slot, iv), c.Slop)
		return d, m.result()
	}
	wait := m.add(last, iv) - now
	if c.Max >= 1 {
		wait = last - m.mul(c.Max-1, iv) - now
	}
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
