package client

import (
	"context"
	"errors"
	"time"
)

// outcomeUnknownBackoff bounds the pause before Wait retries after
// ErrOutcomeUnknown (a random pause up to it, so a fleet does not retry in
// step).
const outcomeUnknownBackoff = 50 * time.Millisecond

// Wait takes a slot of key's throttle and sleeps until it opens, then
// returns the permit: the caller may act at once (and must act before
// Permit.Deadline).
//
//   - The sleep is measured from the reply's arrival (Permit.Start), so the
//     caller never starts before its slot.
//   - On a denial it sleeps for the server's RetryAfter plus a random
//     jitter of up to a tenth of interval, and tries again.
//   - On ErrOutcomeUnknown it treats the slot as not granted and tries
//     again after a short random pause.
//   - If it wakes after Permit.Deadline (the process stalled, or the sleep
//     overshot by more than the slop), it does not use the permit and
//     returns it with ErrPermitExpired. It does not try again: the caller
//     decides.
//
// It returns when it has a usable permit, on ErrPermitExpired, on an error
// other than ErrOutcomeUnknown (ErrClusterDown, ErrInvalidArgument...), or
// when ctx ends (then with ctx's error; a slot already reserved is wasted).
func (c *Client) Wait(ctx context.Context, key string, interval time.Duration, max int, opts ...AcquireOption) (Permit, error) {
	for {
		p, err := c.Acquire(ctx, key, interval, max, opts...)
		switch {
		case errors.Is(err, ErrOutcomeUnknown):
			if err := c.sleep(ctx, c.jitter(outcomeUnknownBackoff)+time.Millisecond); err != nil {
				return p, err
			}
			continue
		case err != nil:
			return p, err
		case !p.Granted:
			if err := c.sleep(ctx, p.RetryAfter+c.jitter(denialJitter(interval))); err != nil {
				return p, err
			}
			continue
		}
		if err := c.sleep(ctx, p.Start().Sub(c.now())); err != nil {
			return p, err
		}
		if c.now().After(p.Deadline()) {
			return p, ErrPermitExpired
		}
		return p, nil
	}
}

// Limiter is a throttle bound to one key, interval and max, for repeated
// use. Get one from Client.Limiter. It is safe for concurrent use; many
// Limiters (in many processes) on the same key share its rate.
type Limiter struct {
	c        *Client
	key      string
	interval time.Duration
	max      int
	opts     []AcquireOption
}

// Limiter returns a Limiter for key: at most one slot per interval, with up
// to max slots reserved ahead.
func (c *Client) Limiter(key string, interval time.Duration, max int, opts ...AcquireOption) *Limiter {
	return &Limiter{c: c, key: key, interval: interval, max: max, opts: opts}
}

// Acquire is Client.Acquire for the limiter's key.
func (l *Limiter) Acquire(ctx context.Context) (Permit, error) {
	return l.c.Acquire(ctx, l.key, l.interval, l.max, l.opts...)
}

// Wait is Client.Wait for the limiter's key.
func (l *Limiter) Wait(ctx context.Context) (Permit, error) {
	return l.c.Wait(ctx, l.key, l.interval, l.max, l.opts...)
}

// Do waits for a slot (see Client.Wait) and runs fn inside it, returning
// fn's error. fn's context carries the permit (PermitFromContext). If no
// usable permit is obtained, fn is not run and the error is Wait's
// (ErrPermitExpired, ErrClusterDown, ctx's error...).
func (l *Limiter) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	p, err := l.Wait(ctx)
	if err != nil {
		return err
	}
	return fn(withPermit(ctx, p))
}

// TryDo runs fn only if a slot is free now; it never reserves a future slot
// and never sleeps. It sends THROTTLE.ACQUIRE with max 0, which grants only
// "go now" slots. When none is free it returns ErrDenied (and fn is not
// run); the permit's RetryAfter says when to try again.
func (l *Limiter) TryDo(ctx context.Context, fn func(ctx context.Context) error) (Permit, error) {
	p, err := l.c.Acquire(ctx, l.key, l.interval, 0, l.opts...)
	if err != nil {
		return p, err
	}
	if !p.Granted {
		return p, ErrDenied
	}
	if l.c.now().After(p.Deadline()) {
		return p, ErrPermitExpired
	}
	return p, fn(withPermit(ctx, p))
}

// Throttle returns a function that behaves like fn but runs it only inside
// a valid permit of key's throttle: each call waits for a slot (see
// Client.Wait), then calls fn with a context carrying the permit. When no
// usable permit is obtained, fn is not called and the zero T is returned
// with Wait's error (ErrPermitExpired, ErrClusterDown, ctx's error...).
//
// For functions without a result, use Client.Limiter(...).Do.
func Throttle[T any](c *Client, key string, interval time.Duration, max int, fn func(ctx context.Context) (T, error), opts ...AcquireOption) func(ctx context.Context) (T, error) {
	l := c.Limiter(key, interval, max, opts...)
	return func(ctx context.Context) (T, error) {
		p, err := l.Wait(ctx)
		if err != nil {
			var zero T
			return zero, err
		}
		return fn(withPermit(ctx, p))
	}
}

// denialJitter is the bound of the random pause added to a denial's
// RetryAfter: a tenth of the interval, at least 1 ms.
func denialJitter(interval time.Duration) time.Duration {
	return max(interval/10, time.Millisecond)
}
