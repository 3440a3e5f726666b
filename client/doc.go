// Package client is the Go client of throttledb: a fleet of workers that
// share one rate-limited resource (an API token, say) take slots from a
// throttledb cluster so that, together, they never call it more often than
// once per interval.
//
//	c, err := client.New(client.Options{Addrs: []string{"10.0.0.1:6380", "10.0.0.2:6380", "10.0.0.3:6380"}})
//	if err != nil { ... }
//	defer c.Close()
//
//	// One call at most every 3 s, up to 2 slots reserved ahead.
//	api := c.Limiter("api-token-1", 3*time.Second, 2)
//	err = api.Do(ctx, func(ctx context.Context) error {
//		return callTheAPI(ctx)
//	})
//
// The building blocks, lowest first:
//
//   - Client.Acquire sends one THROTTLE.ACQUIRE and returns a Permit:
//     granted now (Wait 0), a reservation (Wait > 0: the slot opens at
//     Permit.Start), or denied (RetryAfter says when to try again). It
//     never sleeps.
//   - Client.Wait acquires and sleeps until the slot opens, retrying
//     denials after RetryAfter plus jitter. It refuses a permit it woke up
//     too late to use (ErrPermitExpired).
//   - Limiter binds a key, interval and max for repeated use: Wait, Do(fn),
//     TryDo(fn) (only if a slot is free now; ErrDenied otherwise).
//   - Throttle wraps a func(ctx) (T, error) so that every call runs inside
//     a valid permit.
//   - OnReply, an option of all of these, reports every reply a call
//     receives, the denials Wait retries included, to log or count them.
//   - WithCost(n) takes n consecutive slots in one call (0: a peek);
//     Client.Cancel gives an unused reservation back, and Wait and
//     Throttle do so themselves when their context ends before the slot.
//
// # Retries
//
// Every Acquire carries an idempotency token (THROTTLE.ACQUIRE's ID: random
// from crypto/rand, or the caller's with WithID), and every resend of the
// same call reuses it: after a network error on another address, and in
// Wait after ErrOutcomeUnknown. The server remembers a granted token for a
// minute of cluster time and answers a repeat with the first reply, so a
// retry never takes a second slot. Wait stops resending 45 seconds after
// the first attempt (returning ErrOutcomeUnknown), so that no resend
// reaches a server that has forgotten the token. Such a reply may have been decided when
// the first attempt was sent, so the permit's Deadline is moved earlier by
// the time since then.
//
// # Time
//
// The server answers in cluster time (the leader's clock); the client acts
// in local time measured from the moment the reply arrived: the slot opens
// at Received + Wait and the permit may be used until that plus the slop.
// Since the server decided before the reply arrived, a slot is never opened
// early, whatever the local clock says; the cost is that a caller may start
// up to one reply latency later than its slot.
//
// # Failover and errors
//
// Any node serves every command (followers forward to the leader), so
// Options.Addrs may list any nodes. On a network error the client moves on
// to the next address and stays there; on CLUSTERDOWN it asks another node
// before giving up. See Client for the exact rules, including why go-redis's
// own retries are disabled. Errors wrap the sentinels ErrClusterDown,
// ErrOutcomeUnknown, ErrPermitExpired, ErrDenied and ErrInvalidArgument; a
// context's error is returned as is.
package client
