package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// CellThrottle is CL.THROTTLE key max_burst count_per_period period
// [quantity], the command of the redis-cell module: a GCRA (generic cell
// rate algorithm) limiter allowing Count events per Period seconds with
// bursts of up to MaxBurst+1. Quantity is how many events this call
// counts; 0 only looks (a peek) and changes nothing.
//
// The algorithm, its nanosecond arithmetic and its rounding are redis-cell's
// (src/cell/mod.rs, src/lib.rs), so that every reply matches the module's
// at the same clock; where redis-cell would wrap or panic on overflow, or
// accepts negative arguments, this refuses (ErrInvalidCell).
type CellThrottle struct {
	Key      string
	MaxBurst int64
	Count    int64
	Period   int64 // seconds
	Quantity int64
}

// Op implements Command.
func (CellThrottle) Op() Op { return OpCellThrottle }

func (c CellThrottle) appendPayload(b []byte) []byte {
	b = appendString(b, c.Key)
	for _, v := range []int64{c.MaxBurst, c.Count, c.Period, c.Quantity} {
		b = binary.AppendVarint(b, v)
	}
	return b
}

// FlushAll removes every key of both kinds (FLUSHALL, FLUSHDB). The
// counters and the membership are kept.
type FlushAll struct{}

// Op implements Command.
func (FlushAll) Op() Op { return OpFlushAll }

func (FlushAll) appendPayload(b []byte) []byte { return b }

// Validate checks a CellThrottle's arguments without reference to any
// state. The error wraps ErrInvalidKey or ErrInvalidCell.
func (c CellThrottle) Validate() error {
	if err := ValidateKey(c.Key); err != nil {
		return err
	}
	for _, a := range []struct {
		name string
		v    int64
	}{{"max_burst", c.MaxBurst}, {"count_per_period", c.Count}, {"period", c.Period}, {"quantity", c.Quantity}} {
		if a.v < 0 {
			return fmt.Errorf("%w: %w", ErrInvalidCell, fmt.Errorf("%s must not be negative", a.name))
		}
	}
	// Check once, at cluster time 0, that the arithmetic on the arguments
	// alone fits: limit, tolerance and increment (decideCell checks again
	// with the clock and the key's state).
	e, err := c.emission()
	if err != nil {
		return err
	}
	var m checked
	m.mul(e, m.add(c.MaxBurst, 1))
	m.mul(e, c.Quantity)
	if m.overflow {
		return errCellOverflow
	}
	return nil
}

// errCellOverflow is a CL.THROTTLE whose arithmetic would overflow. It is
// reported as an invalid argument (not ErrOverflow, whose words are
// THROTTLE.ACQUIRE's), naming what is too large.
var errCellOverflow = fmt.Errorf("%w: %w", ErrInvalidCell,
	errors.New("max_burst, count_per_period, period or quantity too large: the rate limit arithmetic would overflow int64 nanoseconds"))

const (
	nsPerMs  = 1_000_000
	nsPerSec = 1_000_000_000
)

// emission is the GCRA emission interval in nanoseconds: the period over
// the count, computed in float64 and truncated as redis-cell's
// Rate::per_period does.
func (c CellThrottle) emission() (int64, error) {
	var m checked
	periodNs := m.mul(c.Period, nsPerSec)
	if m.overflow {
		return 0, errCellOverflow
	}
	if c.Count == 0 || c.Period == 0 {
		return 0, fmt.Errorf("%w: %w", ErrInvalidCell, fmt.Errorf("zero rates are not supported: count_per_period and period must be positive"))
	}
	e := int64(float64(periodNs) / float64(c.Count))
	if e < 1 {
		return 0, fmt.Errorf("%w: %w", ErrInvalidCell, fmt.Errorf("zero rates are not supported: more than one event per nanosecond"))
	}
	return e, nil
}

// CellResult is the answer to CL.THROTTLE, before rounding: durations are
// nanoseconds, as redis-cell computes them. Reply gives the five integers
// the command returns.
type CellResult struct {
	// Limited reports that the call was refused.
	Limited bool
	// Limit is max_burst+1.
	Limit int64
	// Remaining is how many more events fit now.
	Remaining int64
	// RetryAfter is, when limited, how long until the call would succeed
	// (ns); -1 s when allowed, or when the quantity can never fit.
	RetryAfter int64
	// ResetAfter is how long until the key is back to its full capacity
	// (ns), which is also when it expires.
	ResetAfter int64
}

// Reply returns the five integers of CL.THROTTLE's reply: limited (0 or 1),
// limit, remaining, retry_after and reset_after in seconds, each duration
// rounded as redis-cell rounds it: truncated, then one second more if the
// remainder holds at least a whole millisecond.
func (r CellResult) Reply() [5]int64 {
	limited := int64(0)
	if r.Limited {
		limited = 1
	}
	return [5]int64{limited, r.Limit, r.Remaining, cellSeconds(r.RetryAfter), cellSeconds(r.ResetAfter)}
}

// cellSeconds rounds a duration in ns to seconds exactly as redis-cell does
// with the time crate: `as_seconds_f64() as i64`, plus one when
// `subsec_milliseconds() > 0`.
func cellSeconds(ns int64) int64 {
	secs, nanos := ns/nsPerSec, ns%nsPerSec // the time crate's fields, same sign
	s := satInt64(float64(secs) + float64(nanos)/1e9)
	if nanos/nsPerMs > 0 {
		s++
	}
	return s
}

// satInt64 converts f to int64 as Rust's `as` does: truncating, saturating
// at the bounds and turning NaN into 0. Go leaves out-of-range conversions
// to the platform, which a replicated state machine cannot afford.
func satInt64(f float64) int64 {
	switch {
	case math.IsNaN(f):
		return 0
	case f >= math.MaxInt64: // 2^63 as a float64
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	default:
		return int64(f)
	}
}

// cellDecision is the outcome of a CL.THROTTLE before it is applied.
type cellDecision struct {
	res CellResult
	// store reports that the key's theoretical arrival time becomes tat.
	store bool
	tat   int64
}

// decideCell computes CL.THROTTLE at cluster time nowMs for a key whose
// theoretical arrival time (TAT, Unix ns) is tat, or absent when !present,
// changing nothing. It follows redis-cell's RateLimiter::rate_limit step by
// step, with every step checked for int64 overflow.
func decideCell(c CellThrottle, tat int64, present bool, nowMs int64) (cellDecision, error) {
	if err := c.Validate(); err != nil {
		return cellDecision{}, err
	}
	emission, _ := c.emission()
	var m checked
	now := m.mul(nowMs, nsPerMs)
	limit := m.add(c.MaxBurst, 1)
	dvt := m.mul(emission, limit) // delay variation tolerance
	increment := m.mul(emission, c.Quantity)
	if !present {
		tat = now
	}
	var newTAT int64
	if now > tat {
		newTAT = m.add(now, increment)
	} else {
		newTAT = m.add(tat, increment)
	}
	allowAt := m.add(newTAT, -dvt)
	diff := m.add(now, -allowAt)
	if m.overflow {
		return cellDecision{}, errCellOverflow
	}
	d := cellDecision{res: CellResult{Limit: limit, RetryAfter: -nsPerSec}}
	var ttl int64
	if diff < 0 {
		d.res.Limited = true
		if increment <= dvt {
			d.res.RetryAfter = -diff
		}
		ttl = tat - now
	} else {
		ttl = newTAT - now
		// A peek (quantity 0) leaves the TAT where it was; on an absent
		// key it would store the present, which is already expired.
		d.store, d.tat = c.Quantity > 0, newTAT
	}
	next := m.add(dvt, -ttl)
	if m.overflow {
		return cellDecision{}, errCellOverflow
	}
	if next > -emission {
		// whole_microseconds truncates toward zero, as Go's division does.
		d.res.Remaining = satInt64(float64(next/1000) / float64(emission/1000))
	}
	d.res.ResetAfter = ttl
	return d, nil
}
