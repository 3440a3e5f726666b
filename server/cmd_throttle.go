package server

import (
	"context"
	"fmt"
	"strings"

	"github.com/throttledb/throttledb/fsm"
)

// parseAcquire parses the arguments shared by THROTTLE.ACQUIRE and
// THROTTLE.PEEK (args includes the name) and validates them, so that bad
// input is refused before anything reaches the log.
func parseAcquire(args [][]byte) (fsm.Acquire, error) {
	if len(args) != 4 && len(args) != 6 {
		return fsm.Acquire{}, errArity(strings.ToLower(string(args[0])))
	}
	a := fsm.Acquire{Key: string(args[1])}
	var ok bool
	if a.Interval, ok = parseInt(args[2]); !ok {
		return a, errNotInteger
	}
	if a.Max, ok = parseInt(args[3]); !ok {
		return a, errNotInteger
	}
	a.Slop = fsm.DefaultSlop(a.Interval)
	if len(args) == 6 {
		if !strings.EqualFold(string(args[4]), "slop") {
			return a, errSyntax
		}
		if a.Slop, ok = parseInt(args[5]); !ok {
			return a, errNotInteger
		}
	}
	if err := a.Validate(); err != nil {
		return a, err
	}
	return a, nil
}

// proposeAcquire is THROTTLE.ACQUIRE's propose (see command.propose).
func proposeAcquire(args [][]byte) (fsm.Command, error) {
	a, err := parseAcquire(args)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// proposeReset parses and validates THROTTLE.RESET's keys.
func proposeReset(args [][]byte) (fsm.Command, error) {
	if len(args) < 2 {
		return nil, errArity("throttle.reset")
	}
	r := fsm.Reset{Keys: make([]string, 0, len(args)-1)}
	for _, k := range args[1:] {
		if err := fsm.ValidateKey(string(k)); err != nil {
			return nil, err
		}
		r.Keys = append(r.Keys, string(k))
	}
	return r, nil
}

// resultReply is the reply to a committed command (cmd) given its result:
// its error, the permit, or the count. Every command that goes through the
// log is answered here, whether it ran alone, pipelined, in EXEC or was
// forwarded.
func resultReply(cmd fsm.Command, res fsm.Result) any {
	switch {
	case res.Err != nil:
		return res.Err
	case cmd.Op() == fsm.OpReset:
		return res.Count
	default:
		return res.Permit
	}
}

// cmdPeek serves THROTTLE.PEEK key interval max [SLOP ms]: the reply ACQUIRE
// would give now, changing nothing. It is answered by the leader after it
// confirms with a quorum that it still leads, so it is never stale.
func cmdPeek(s *Server, c *call) (any, error) {
	a, err := parseAcquire(c.args)
	if err != nil {
		return nil, err
	}
	return s.atLeader(c, func(ctx context.Context) (any, error) {
		if err := s.raft.VerifyLeader().Error(); err != nil {
			// A read is always safe to route again.
			return nil, fmt.Errorf("%w: %w", ErrNotLeader, err)
		}
		return s.fsm.Peek(a, s.wallMs())
	})
}
