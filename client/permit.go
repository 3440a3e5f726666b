package client

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Test for them with errors.Is: the errors returned wrap
// them together with the underlying cause.
var (
	// ErrDenied is returned by TryDo when no slot is free now.
	ErrDenied = errors.New("throttledb: denied")
	// ErrPermitExpired is returned by Wait, Do and Throttle when the caller
	// woke up after the permit's expiry: the slot was taken but must not be
	// used. The function was not run.
	ErrPermitExpired = errors.New("throttledb: permit expired before it was used")
	// ErrClusterDown is returned when a node answered CLUSTERDOWN (no
	// leader) and so did every other address tried, or when no address
	// could be reached at all.
	ErrClusterDown = errors.New("throttledb: cluster down")
	// ErrOutcomeUnknown is returned by Acquire when the server answered
	// TRYAGAIN: leadership changed while the reservation was being
	// committed, or it was not committed within the server's commit
	// timeout, so it may or may not have been granted. Treat it as not
	// granted. Wait retries it on its own, with the same token, so that a
	// grant made after all is answered rather than taken twice.
	ErrOutcomeUnknown = errors.New("throttledb: outcome unknown")
	// ErrInvalidArgument is returned, before anything is sent, for a bad key,
	// interval, max, slop, cost or ID.
	ErrInvalidArgument = errors.New("throttledb: invalid argument")
)

// Permit is the answer to one THROTTLE.ACQUIRE (or THROTTLE.PEEK).
//
// ValidAt and ExpiresAt are in cluster time (the leader's clock). To act on
// a permit, use the local times Start and Deadline instead: they are
// measured from Received, the moment the reply arrived, on this process's
// monotonic clock, so they never open a slot early even if the local clock
// differs from the leader's.
type Permit struct {
	// Granted reports whether a slot was granted, now or in the future.
	Granted bool
	// Wait is, when granted, how long after Received the slot opens
	// (0: go now). It is 0 when denied.
	Wait time.Duration
	// ValidAt is the granted slot in cluster time; zero when denied.
	ValidAt time.Time
	// ExpiresAt is ValidAt plus the slop: the last moment the permit may be
	// used, in cluster time; zero when denied.
	ExpiresAt time.Time
	// Pending is the number of granted slots still in the future after this
	// call (including this one if it is a reservation).
	Pending int
	// RetryAfter is, when denied, how long until a call could succeed; 0
	// when granted.
	RetryAfter time.Duration
	// Received is the local time the reply arrived.
	Received time.Time
	// RoundTrip is the time from sending the command to the reply's
	// arrival (on the node that answered).
	RoundTrip time.Duration

	// early is how long before this attempt the request was first sent:
	// the reply may be an earlier attempt's (see Client.send).
	early time.Duration
}

// Start is the local time the slot opens: Received + Wait. It is zero when
// denied.
func (p Permit) Start() time.Time {
	if !p.Granted {
		return time.Time{}
	}
	return p.Received.Add(p.Wait)
}

// Slop is how long after the slot opens the permit may still be used.
func (p Permit) Slop() time.Duration {
	if !p.Granted {
		return 0
	}
	return p.ExpiresAt.Sub(p.ValidAt)
}

// Deadline is the local time after which the permit must not be used:
// Start + Slop, less the time between the request's first attempt and the
// one answered when the client retried it with the same token (the reply
// may then be the first attempt's, decided that much earlier). It is zero
// when denied, and may be before Start: the permit is then unusable.
func (p Permit) Deadline() time.Time {
	if !p.Granted {
		return time.Time{}
	}
	return p.Start().Add(p.Slop() - p.early)
}

// String formats p like the exercise's Python Permit (README), or "None" when
// denied.
func (p Permit) String() string {
	if !p.Granted {
		return "None"
	}
	return fmt.Sprintf("Permit(time_to_wait_ms=%d, expires_at=%d, valid_at=%d)",
		p.Wait.Milliseconds(), p.ExpiresAt.UnixMilli(), p.ValidAt.UnixMilli())
}

// permitFromReply converts the five integers of an ACQUIRE or PEEK reply.
func permitFromReply(v []int64, sent, received time.Time) (Permit, error) {
	if len(v) != 5 {
		return Permit{}, fmt.Errorf("throttledb: unexpected reply of %d integers, want 5", len(v))
	}
	p := Permit{Granted: v[0] == 1, Pending: int(v[4]), Received: received, RoundTrip: received.Sub(sent)}
	if p.Granted {
		p.Wait = time.Duration(v[1]) * time.Millisecond
		p.ValidAt = time.UnixMilli(v[2])
		p.ExpiresAt = time.UnixMilli(v[3])
	} else {
		p.RetryAfter = time.Duration(v[1]) * time.Millisecond
	}
	return p, nil
}

type permitKey struct{}

// PermitFromContext returns the permit under which Do, TryDo or a Throttle'd
// function is running, if any.
func PermitFromContext(ctx context.Context) (Permit, bool) {
	p, ok := ctx.Value(permitKey{}).(Permit)
	return p, ok
}

func withPermit(ctx context.Context, p Permit) context.Context {
	return context.WithValue(ctx, permitKey{}, p)
}
