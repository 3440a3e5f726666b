package server

import (
	"context"
	"fmt"
	"strings"

	"github.com/throttledb/throttledb/fsm"
)

// parseAcquire parses the arguments shared by THROTTLE.ACQUIRE and
// THROTTLE.PEEK and validates them, so that bad input is refused before
// anything reaches the log. It returns the error reply's text, if any.
func parseAcquire(c *call) (fsm.Acquire, string) {
	args := c.args
	if len(args) != 4 && len(args) != 6 {
		return fsm.Acquire{}, wrongArity(strings.ToLower(string(args[0])))
	}
	a := fsm.Acquire{Key: string(args[1])}
	var ok bool
	if a.Interval, ok = parseInt(args[2]); !ok {
		return a, msgNotInteger
	}
	if a.Max, ok = parseInt(args[3]); !ok {
		return a, msgNotInteger
	}
	a.Slop = fsm.DefaultSlop(a.Interval)
	if len(args) == 6 {
		if !strings.EqualFold(string(args[4]), "slop") {
			return a, msgSyntax
		}
		if a.Slop, ok = parseInt(args[5]); !ok {
			return a, msgNotInteger
		}
	}
	if err := a.Validate(); err != nil {
		return a, errorText(err)
	}
	return a, ""
}

// parseReset parses and validates THROTTLE.RESET's keys. It returns the
// error reply's text, if any.
func parseReset(c *call) (fsm.Reset, string) {
	if len(c.args) < 2 {
		return fsm.Reset{}, wrongArity("throttle.reset")
	}
	r := fsm.Reset{Keys: make([]string, 0, len(c.args)-1)}
	for _, k := range c.args[1:] {
		if err := fsm.ValidateKey(string(k)); err != nil {
			return r, errorText(err)
		}
		r.Keys = append(r.Keys, string(k))
	}
	return r, ""
}

// writeResult writes the reply of a committed THROTTLE.ACQUIRE or
// THROTTLE.RESET (cmd): its error, the permit, or the count.
func writeResult(c *call, cmd fsm.Command, res fsm.Result) {
	switch {
	case res.Err != nil:
		c.conn.WriteError(errorText(res.Err))
	case cmd.Op() == fsm.OpReset:
		c.conn.WriteInt64(res.Count)
	default:
		writePermit(c, res.Permit)
	}
}

// writePermit writes the reply of ACQUIRE and PEEK: granted, wait_ms,
// valid_at, expires_at, pending.
func writePermit(c *call, p fsm.Permit) {
	granted := int64(0)
	if p.Granted {
		granted = 1
	}
	c.conn.WriteArray(5)
	for _, v := range []int64{granted, p.WaitMs, p.ValidAt, p.ExpiresAt, p.Pending} {
		c.conn.WriteInt64(v)
	}
}

// cmdAcquire serves THROTTLE.ACQUIRE key interval max [SLOP ms]: take a slot
// from key's throttle, now or reserved in the future, or be told when to
// retry. The reply is sent only after the grant is committed on a majority.
func cmdAcquire(s *Server, c *call) {
	a, errMsg := parseAcquire(c)
	if errMsg != "" {
		c.conn.WriteError(errMsg)
		return
	}
	res, err := s.decide(c, a)
	if err != nil {
		c.conn.WriteError(errorText(err))
		return
	}
	writeResult(c, a, res[0])
}

// cmdPeek serves THROTTLE.PEEK key interval max [SLOP ms]: the reply ACQUIRE
// would give now, changing nothing. It is answered by the leader after it
// confirms with a quorum that it still leads, so it is never stale.
func cmdPeek(s *Server, c *call) {
	a, errMsg := parseAcquire(c)
	if errMsg != "" {
		c.conn.WriteError(errMsg)
		return
	}
	s.onLeader(c, func(ctx context.Context) error {
		if err := s.raft.VerifyLeader().Error(); err != nil {
			// A read is always safe to route again.
			return fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		p, err := s.fsm.Peek(a, s.wallMs())
		if err != nil {
			c.conn.WriteError(errorText(err))
			return nil
		}
		writePermit(c, p)
		return nil
	})
}

// cmdReset serves THROTTLE.RESET key [key ...]: remove the keys' state through
// the log; the reply counts the keys that existed (unexpired).
func cmdReset(s *Server, c *call) {
	r, errMsg := parseReset(c)
	if errMsg != "" {
		c.conn.WriteError(errMsg)
		return
	}
	res, err := s.decide(c, r)
	if err != nil {
		c.conn.WriteError(errorText(err))
		return
	}
	writeResult(c, r, res[0])
}
