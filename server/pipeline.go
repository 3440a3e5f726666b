package server

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/throttledb/throttledb/fsm"
	"github.com/tidwall/redcon"
)

// pipelined reports whether rc and the commands the client has already
// pipelined behind it (they arrived in the same read) are served together:
// every one of them is THROTTLE.ACQUIRE and the session may run commands.
// Anything else (a mixed pipeline, an unauthenticated session, an open
// transaction) is served one command at a time.
func (s *Server) pipelined(conn *clientConn, sess *session, rc redcon.Command) bool {
	rest := conn.PeekPipeline()
	if len(rest) == 0 || !sess.authed || sess.tx != nil || !isAcquire(rc) {
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

// servePipeline serves a pipeline that pipelined accepted where the router
// sends it: queued to the proposer on the ready leader, to the forwarder on
// a follower (servePipelined). When the router gives up (no leader,
// shutting down), each command gets its own reply as if it had been sent
// alone: its argument error if it has one, else the router's.
func (s *Server) servePipeline(conn *clientConn, sess *session, cmds []redcon.Command) {
	err := s.router.route(context.Background(), false,
		func(context.Context) error { s.servePipelined(conn, sess, cmds, s.prop); return nil },
		func(_ context.Context, addr string) error {
			s.servePipelined(conn, sess, cmds, s.fwd.to(addr))
			return nil
		})
	if err == nil {
		return
	}
	start := time.Now()
	for _, rc := range cmds {
		errs := conn.errs
		if _, _, perr := parseAcquire(rc.Args); perr != nil {
			conn.WriteError(errorText(perr))
		} else {
			conn.WriteError(errorText(err))
		}
		s.stats.record("throttle.acquire", start, time.Now(), conn, errs)
	}
}

// servePipelined serves a pipeline of THROTTLE.ACQUIREs from one
// connection (see pipelined) through sub: the proposer on the leader, the
// forwarder on a follower.
//
// Why: served one at a time, each command waits for its own commit (an
// fsync and a replication round trip) before the next is even read, so a
// client that pipelines gains nothing. Here every command is queued first,
// so they share log entries (and, from a follower, forwarding requests),
// and then the replies are written in order as each is decided. Order is
// kept: proposals one goroutine queues are applied in the order it queued
// them, exactly as one at a time. Each reply is still written only after
// its command is committed.
func (s *Server) servePipelined(conn *clientConn, sess *session, cmds []redcon.Command, sub submitter) {
	type pending struct {
		c      *call
		a      fsm.Acquire
		errMsg error     // refused before reaching the log
		pr     *proposal // queued; nil with no errMsg: serve one at a time
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.LeaderWait)
	defer cancel()
	start := time.Now() // each command's time in commandstats runs from here to its reply
	ps := make([]pending, len(cmds))
	queueing := true
	for i, rc := range cmds {
		c := &call{conn: conn, sess: sess, args: rc.Args}
		ps[i].c = c
		a, peek, errMsg := parseAcquire(c.args)
		if errMsg != nil {
			ps[i].errMsg = errMsg
			continue
		}
		if peek {
			// COST 0 is a read, answered one at a time when its turn
			// comes; so are the commands after it, so that it sees
			// exactly the commands before it.
			queueing = false
		}
		if _, fwd := sub.(forwardTo); fwd && a.Token == "" {
			a.Token = newToken() // so that an unknown outcome can be resent
		}
		ps[i].a = a
		// Once an enqueue fails (shutting down, queue full past
		// LeaderWait), this and every later command are left with pr nil
		// and served one at a time, in order, after the earlier ones.
		if queueing {
			var err error
			if ps[i].pr, err = sub.enqueue(ctx, a); err != nil {
				queueing = false
			}
		}
	}
	s.pipelinedTotal.Add(int64(len(cmds)))
	for _, p := range ps {
		errs := conn.errs
		switch {
		case p.errMsg != nil:
			p.c.writeReply(nil, p.errMsg)
		case p.pr == nil:
			s.dispatch(p.c) // counts itself in commandstats
			continue
		default:
			rs, err := sub.await(p.pr)
			if _, fwd := sub.(forwardTo); fwd && errors.Is(err, ErrOutcomeUnknown) {
				// Routed again with the same token (see Server.decide).
				rs, err = s.decide(p.c, p.a)
			}
			switch {
			case errors.Is(err, ErrNotLeader):
				// Never entered the log: serve it as usual, which
				// routes it to the new leader.
				s.dispatch(p.c)
				continue
			case err != nil:
				conn.WriteError(errorText(err))
			default:
				p.c.writeValue(resultReply(p.a, rs[0]))
			}
		}
		s.stats.record("throttle.acquire", start, time.Now(), conn, errs)
	}
}
