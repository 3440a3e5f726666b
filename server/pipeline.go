package server

import (
	"context"
	"errors"
	"strings"

	"github.com/tidwall/redcon"
)

// pipelined reports whether rc and the commands the client has already
// pipelined behind it (redcon parsed them from the same read) can be served
// together by servePipelined: this node is the ready leader, the session
// may run commands, and every one of them is THROTTLE.ACQUIRE. Anything
// else (a mixed pipeline, a follower, an unauthenticated session) is served
// one command at a time, as before.
func (s *Server) pipelined(conn redcon.Conn, sess *session, rc redcon.Command) bool {
	rest := conn.PeekPipeline()
	if len(rest) == 0 || !sess.authed || !isAcquire(rc) || !s.isReady() {
		return false
	}
	for _, c := range rest {
		if !isAcquire(c) {
			return false
		}
	}
	return true
}

func isAcquire(rc redcon.Command) bool {
	return len(rc.Args) > 0 && strings.EqualFold(string(rc.Args[0]), "throttle.acquire")
}

// servePipelined serves a pipeline of THROTTLE.ACQUIREs from one connection
// (see pipelined).
//
// Why: served one at a time, each command waits for its own commit (an
// fsync and a replication round trip) before the next is even read, so a
// client that pipelines gains nothing. Here every command is queued to the
// proposer first, so they share log entries, and then the replies are
// written in order as each is decided. Order is kept: the proposer takes
// proposals in the order they were queued and Raft applies entries in log
// order, so the commands apply in the order they were sent, exactly as one
// at a time. Each reply is still written only after its command is
// committed.
func (s *Server) servePipelined(conn redcon.Conn, sess *session, cmds []redcon.Command) {
	type pending struct {
		c      *call
		errMsg string    // refused before reaching the log
		pr     *proposal // queued; nil with no errMsg: serve one at a time
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.LeaderWait)
	defer cancel()
	ps := make([]pending, len(cmds))
	for i, rc := range cmds {
		c := &call{conn: conn, sess: sess, args: rc.Args}
		ps[i].c = c
		a, errMsg := parseAcquire(c)
		if errMsg != "" {
			ps[i].errMsg = errMsg
			continue
		}
		// An enqueue that fails (shutting down, queue full past
		// LeaderWait) leaves pr nil: dispatch then serves it as usual.
		ps[i].pr, _ = s.prop.enqueue(ctx, a)
	}
	s.cmdsTotal.Add(int64(len(cmds)))
	s.pipelinedTotal.Add(int64(len(cmds)))
	for _, p := range ps {
		switch {
		case p.errMsg != "":
			conn.WriteError(p.errMsg)
		case p.pr == nil:
			s.dispatch(p.c, true)
		default:
			res, err := s.prop.await(p.pr)
			switch {
			case errors.Is(err, ErrNotLeader):
				// Never entered the log: serve it as usual, which
				// routes it to the new leader.
				s.dispatch(p.c, true)
			case err != nil:
				conn.WriteError(errorText(err))
			case res.Err != nil:
				conn.WriteError(errorText(res.Err))
			default:
				writePermit(p.c, res.Permit)
			}
		}
	}
}
