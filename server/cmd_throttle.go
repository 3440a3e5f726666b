package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/throttledb/throttledb/fsm"
)

// parseAcquire parses the arguments of THROTTLE.ACQUIRE and THROTTLE.PEEK
// (args includes the name):
//
//	key interval max [SLOP ms] [COST n] [ID token]
//
// the options in any order, each at most once (ID on ACQUIRE only), and
// validates them, so that bad input is refused before anything reaches the
// log. peek reports ACQUIRE's COST 0, a peek; the Acquire then has cost 1,
// the cost a peek asks about. A cost of 1 is left 0 (read as 1), so that
// the Acquire is encoded as it always was (fsm.OpAcquire) unless it has a
// token.
func parseAcquire(args [][]byte) (a fsm.Acquire, peek bool, err error) {
	if len(args) < 4 {
		return a, false, errArity(strings.ToLower(string(args[0])))
	}
	peekCmd := strings.EqualFold(string(args[0]), "throttle.peek")
	a, err = parseAcquireArgs(args, peekCmd)
	if err != nil {
		return a, false, err
	}
	switch a.Cost {
	case 0:
		peek = !peekCmd
	case 1:
		a.Cost = 0
	}
	return a, peek, nil
}

func parseAcquireArgs(args [][]byte, peekCmd bool) (fsm.Acquire, error) {
	a := fsm.Acquire{Key: string(args[1]), Cost: 1}
	var ok bool
	if a.Interval, ok = parseInt(args[2]); !ok {
		return a, errNotInteger
	}
	if a.Max, ok = parseInt(args[3]); !ok {
		return a, errNotInteger
	}
	a.Slop = fsm.DefaultSlop(a.Interval)
	var seen [3]bool // SLOP, COST, ID
	for i := 4; i < len(args); i += 2 {
		opt := -1
		switch {
		case strings.EqualFold(string(args[i]), "slop"):
			opt = 0
		case strings.EqualFold(string(args[i]), "cost"):
			opt = 1
		case strings.EqualFold(string(args[i]), "id") && !peekCmd:
			opt = 2
		}
		if opt < 0 || seen[opt] || i+1 >= len(args) {
			return a, errSyntax
		}
		seen[opt] = true
		v := args[i+1]
		switch opt {
		case 0:
			if a.Slop, ok = parseInt(v); !ok {
				return a, errNotInteger
			}
		case 1:
			if a.Cost, ok = parseInt(v); !ok {
				return a, errNotInteger
			}
		case 2:
			if len(v) == 0 {
				return a, fmt.Errorf("%w: empty ID", fsm.ErrInvalidToken)
			}
			a.Token = string(v)
		}
	}
	if err := a.Validate(); err != nil {
		return a, err
	}
	return a, nil
}

// errPeekInTx is the reply, in its place in EXEC's, to an ACQUIRE with
// COST 0 queued in a transaction: a peek is answered by the leader from
// its state, which a transaction's single log entry cannot do at the
// command's place in it.
var errPeekInTx = redisError("ERR COST 0 (a peek) cannot run in a transaction: use THROTTLE.PEEK outside MULTI")

// errRead is what a row's propose returns for a call that changes nothing
// and is served as a read by the row's run instead (ACQUIRE with COST 0).
var errRead = errors.New("served as a read")

// proposeAcquire is THROTTLE.ACQUIRE's propose (see command.propose); with
// COST 0 the call is a peek (errRead), served by cmdAcquirePeek.
func proposeAcquire(args [][]byte) (fsm.Command, error) {
	a, peek, err := parseAcquire(args)
	if err != nil {
		return nil, err
	}
	if peek {
		return nil, errRead
	}
	return a, nil
}

// cmdAcquirePeek serves THROTTLE.ACQUIRE with COST 0: the reply
// THROTTLE.PEEK gives.
func cmdAcquirePeek(s *Server, c *call) (any, error) {
	a, _, err := parseAcquire(c.args)
	if err != nil {
		return nil, err
	}
	return s.peek(c, a)
}

// proposeCancel parses THROTTLE.CANCEL key valid_at [ID token].
func proposeCancel(args [][]byte) (fsm.Command, error) {
	if len(args) != 3 && len(args) != 5 {
		if len(args) < 3 {
			return nil, errArity("throttle.cancel")
		}
		return nil, errSyntax
	}
	cl := fsm.Cancel{Key: string(args[1])}
	var ok bool
	if cl.ValidAt, ok = parseInt(args[2]); !ok {
		return nil, errNotInteger
	}
	if len(args) == 5 {
		if !strings.EqualFold(string(args[3]), "id") {
			return nil, errSyntax
		}
		if len(args[4]) == 0 {
			return nil, fmt.Errorf("%w: empty ID", fsm.ErrInvalidToken)
		}
		cl.Token = string(args[4])
	}
	if err := cl.Validate(); err != nil {
		return nil, err
	}
	return cl, nil
}

// proposeReset parses and validates the keys of THROTTLE.RESET, DEL and
// UNLINK: the same command in the log.
func proposeReset(args [][]byte) (fsm.Command, error) {
	if len(args) < 2 {
		return nil, errArity(strings.ToLower(string(args[0])))
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
	case permitReply(cmd):
		return res.Permit
	case cmd.Op() == fsm.OpReset, cmd.Op() == fsm.OpCancel:
		return res.Count
	case cmd.Op() == fsm.OpCellThrottle:
		return cellReply(res.Cell)
	default: // fsm.OpFlushAll
		return ok
	}
}

// permitReply reports whether resultReply answers cmd, when it succeeds,
// with its permit.
func permitReply(cmd fsm.Command) bool {
	switch cmd.Op() {
	case fsm.OpReset, fsm.OpCancel, fsm.OpCellThrottle, fsm.OpFlushAll:
		return false
	}
	return true
}

// cmdPeek serves THROTTLE.PEEK key interval max [SLOP ms] [COST n]: the
// reply ACQUIRE would give now, changing nothing.
func cmdPeek(s *Server, c *call) (any, error) {
	a, _, err := parseAcquire(c.args)
	if err != nil {
		return nil, err
	}
	return s.peek(c, a)
}

// peek answers a (THROTTLE.PEEK, or ACQUIRE with COST 0) on the leader,
// after it confirms with a quorum that it still leads, so that the answer
// is never stale; a follower relays the command to the leader.
func (s *Server) peek(c *call, a fsm.Acquire) (any, error) {
	return s.atLeader(c, func(ctx context.Context) (any, error) {
		if err := s.raft.VerifyLeader().Error(); err != nil {
			// A read is always safe to route again.
			return nil, fmt.Errorf("%w: %w", ErrNotLeader, err)
		}
		return s.fsm.Peek(a, s.wallMs())
	})
}
