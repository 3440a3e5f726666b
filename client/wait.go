package client

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// outcomeUnknownBackoff bounds the pause before Wait retries after
// ErrOutcomeUnknown (a random pause up to it, so a fleet does not retry in
// step).
const outcomeUnknownBackoff = 50 * time.Millisecond

// tokenRetryLimit is how long after a call's first attempt Wait still
// resends it with the same token after ErrOutcomeUnknown. The server
// remembers a token for one minute of cluster time from when the first
// attempt was applied (stamped after it was sent); a resend is stamped at
// most the server's --leader-wait (2 s by default) plus a forwarding hop
// after it is sent. A resend later than this could reach a server that has
// forgotten the first attempt, which, if it was granted after all, would
// then take a second slot: Wait returns ErrOutcomeUnknown instead.
const tokenRetryLimit = 45 * time.Second

// Wait takes a slot of key's throttle and sleeps until it opens, then
// returns the permit: the caller may act at once (and must act before
// Permit.Deadline).
//
//   - The sleep is measured from the reply's arrival (Permit.Start), so the
//     caller never starts before its slot.
//   - On a denial it sleeps for the server's RetryAfter plus a random
//     jitter of up to a tenth of interval, and tries again.
//   - On ErrOutcomeUnknown it tries again after a short random pause,
//     with the same idempotency token: if the first attempt was granted
//     after all, the retry is answered with that grant. It stops, and
//     returns ErrOutcomeUnknown, once 45 seconds have passed since the
//     first attempt: the server remembers a token for a minute, and a
//     later resend could take a second slot.
//   - If it wakes after Permit.Deadline (the process stalled, or the sleep
//     overshot by more than the slop), it does not use the permit and
//     returns it with ErrPermitExpired. It does not try again: the caller
//     decides.
//
// It returns when it has a usable permit, on ErrPermitExpired, on an error
// other than ErrOutcomeUnknown (ErrClusterDown, ErrInvalidArgument...), on
// ErrOutcomeUnknown 45 seconds after the first attempt, or
// when ctx ends (then with ctx's error). When ctx ends while it sleeps
// until a reserved slot, it gives the slot back (THROTTLE.CANCEL, see
// Client.Cancel) before returning, so that the next caller can have it.
//
// WithCost(0) (a peek) cannot be waited for: ErrInvalidArgument.
func (c *Client) Wait(ctx context.Context, key string, interval time.Duration, max int, opts ...AcquireOption) (Permit, error) {
	r, err := newRequest("THROTTLE.ACQUIRE", key, interval, max, opts)
	if err != nil {
		return Permit{}, err
	}
	if r.peek {
		return Permit{}, fmt.Errorf("%w: Wait with cost 0 (a peek) takes no slot", ErrInvalidArgument)
	}
	for {
		p, err := c.send(ctx, r)
		switch {
		case errors.Is(err, ErrOutcomeUnknown):
			if err := c.sleep(ctx, c.jitter(outcomeUnknownBackoff)+time.Millisecond); err != nil {
				return p, err
			}
			if c.now().Sub(r.first) >= tokenRetryLimit {
				return p, err // too late to resend with this token
			}
			continue
		case err != nil:
			return p, err
		case !p.Granted:
			// A denial is not remembered with the token: no earlier
			// attempt of it was granted, so the next is decided afresh.
			r.first = time.Time{}
			if err := c.sleep(ctx, p.RetryAfter+c.jitter(denialJitter(interval))); err != nil {
				return p, err
			}
			continue
		}
		if err := c.sleep(ctx, p.Start().Sub(c.now())); err != nil {
			c.giveBack(ctx, key, p)
			return p, err
		}
		if c.now().After(p.Deadline()) {
			return p, ErrPermitExpired
		}
		return p, nil
	}
}

// giveBackTimeout bounds the THROTTLE.CANCEL Wait sends when its context
// ends before its slot.
const giveBackTimeout = 2 * time.Second

// giveBack cancels p, whose slot has not opened, after ctx ended; the
// outcome is not reported (the caller returns ctx's error either way).
func (c *Client) giveBack(ctx context.Context, key string, p Permit) {
	if !c.now().Before(p.Start()) {
		return // the slot opened: ctx did not end before it
	}
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), giveBackTimeout)
	defer cancel()
	c.Cancel(gctx, key, p)
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
	r, err := newRequest("THROTTLE.ACQUIRE", l.key, l.interval, 0, l.opts)
	if err != nil {
		return Permit{}, err
	}
	if r.peek {
		return Permit{}, fmt.Errorf("%w: TryDo with cost 0 (a peek) takes no slot", ErrInvalidArgument)
	}
	p, err := l.c.send(ctx, r)
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
// Client.Wait, which gives the slot back if ctx ends before it opens),
// then calls fn with a context carrying the permit. When no
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
