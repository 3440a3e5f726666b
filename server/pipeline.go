package server

import (
	"context"
	"errors"
	"strings"

	"github.com/throttledb/throttledb/fsm"
	"github.com/tidwall/redcon"
)

// pipelined reports whether rc and the commands the client has already
// pipelined behind it (they arrived in the same read) are served
// together: every one of them is THROTTLE.ACQUIRE (or, from a follower,
// RAFT.FWD THROTTLE.ACQUIRE), the session may run commands, and this node is
// the ready leader (servePipelined) or a follower that knows the leader
// (forwardPipelined). Anything else (a mixed pipeline, an unauthenticated
// session, no leader) is served one command at a time.
func (s *Server) pipelined(conn *clientConn, sess *session, rc redcon.Command) bool {
	rest := conn.PeekPipeline()
	if len(rest) == 0 || !sess.authed || sess.tx != nil {
		return false
	}
	if _, _, ok := acquireArgs(rc); !ok {
		return false
	}
	for _, c := range rest {
		if _, _, ok := acquireArgs(c); !ok {
			return false
		}
	}
	return true
}

// acquireArgs returns the THROTTLE.ACQUIRE command in rc, unwrapped from
// RAFT.FWD if a follower forwarded it (fwd).
func acquireArgs(rc redcon.Command) (args [][]byte, fwd, ok bool) {
	args = rc.Args
	if len(args) > 1 && strings.EqualFold(string(args[0]), "raft.fwd") {
		args, fwd = args[1:], true
	}
	return args, fwd, len(args) > 0 && strings.EqualFold(string(args[0]), "throttle.acquire")
}

// servePipeline serves a pipeline that pipelined accepted where the router
// sends it: on the ready leader all at once (servePipelined), on a follower
// forwarded whole to the leader (forwardPipelined). When the router gives
// up (no leader, shutting down, or a forwarded pipeline that reached a
// node that is not the leader), each command gets its own reply as if it
// had been sent alone: its argument error if it has one, else the
// router's.
func (s *Server) servePipeline(conn *clientConn, sess *session, cmds []redcon.Command) {
	forwarded := false
	for _, rc := range cmds {
		_, fwd, _ := acquireArgs(rc)
		forwarded = forwarded || fwd
	}
	err := s.router.route(context.Background(), forwarded,
		func(context.Context) error { s.servePipelined(conn, sess, cmds); return nil },
		func(_ context.Context, addr string) error { s.forwardPipelined(conn, sess, addr, cmds); return nil })
	if err == nil {
		return
	}
	s.cmdsTotal.Add(int64(len(cmds)))
	for _, rc := range cmds {
		args, fwd, _ := acquireArgs(rc)
		if _, msg := parseAcquire(&call{conn: conn, sess: sess, args: args, fwd: fwd}); msg != "" {
			conn.WriteError(msg)
			continue
		}
		conn.WriteError(errorText(err))
	}
}

// serveOneByOne serves cmds one at a time, as if never pipelined.
func (s *Server) serveOneByOne(conn *clientConn, sess *session, cmds ...redcon.Command) {
	for _, rc := range cmds {
		s.cmdsTotal.Add(1)
		s.dispatch(&call{conn: conn, sess: sess, args: rc.Args}, true)
	}
}

// forwardPipelined sends a pipeline of THROTTLE.ACQUIREs to the leader in
// one write, each wrapped in RAFT.FWD, and relays the replies in order, so
// that the leader serves them together too (servePipelined). A command the
// leader did not serve (it is no longer the leader, or is stopping) and the
// commands whose replies were lost with the connection are served one at a
// time, which routes them again, as onLeader does for a single command. When
// the leader had them and did not answer in time, their outcome is unknown,
// and the client is told so.
func (s *Server) forwardPipelined(conn *clientConn, sess *session, addr string, cmds []redcon.Command) {
	fwd := make([][][]byte, len(cmds))
	for i, rc := range cmds {
		fwd[i] = append([][]byte{[]byte("RAFT.FWD")}, rc.Args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.LeaderWait+s.cfg.ApplyTimeout)
	defer cancel()
	replies, err := s.pools.Get(addr).DoPipeline(ctx, fwd...)
	s.pipelinedTotal.Add(int64(len(replies)))
	for i, rc := range cmds {
		switch {
		case i < len(replies) && !notServed(replies[i]):
			s.cmdsTotal.Add(1)
			conn.WriteRaw(replies[i])
		case i >= len(replies) && errors.Is(err, context.DeadlineExceeded):
			s.cmdsTotal.Add(1)
			conn.WriteError(msgUnknownFate)
		default:
			s.serveOneByOne(conn, sess, rc)
		}
	}
}

// servePipelined serves, on the ready leader, a pipeline of
// THROTTLE.ACQUIREs from one connection (see pipelined).
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
func (s *Server) servePipelined(conn *clientConn, sess *session, cmds []redcon.Command) {
	type pending struct {
		c      *call
		a      fsm.Acquire
		errMsg string    // refused before reaching the log
		pr     *proposal // queued; nil with no errMsg: serve one at a time
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.LeaderWait)
	defer cancel()
	ps := make([]pending, len(cmds))
	queueing := true
	for i, rc := range cmds {
		args, fwd, _ := acquireArgs(rc)
		c := &call{conn: conn, sess: sess, args: args, fwd: fwd}
		ps[i].c = c
		a, errMsg := parseAcquire(c)
		if errMsg != "" {
			ps[i].errMsg = errMsg
			continue
		}
		ps[i].a = a
		// Once an enqueue fails (shutting down, queue full past
		// LeaderWait), this and every later command are left with pr nil
		// and served one at a time, in order, after the earlier ones.
		if queueing {
			var err error
			if ps[i].pr, err = s.prop.enqueue(ctx, a); err != nil {
				queueing = false
			}
		}
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
			rs, err := s.prop.await(p.pr)
			switch {
			case errors.Is(err, ErrNotLeader):
				// Never entered the log: serve it as usual, which
				// routes it to the new leader (or, forwarded, tells
				// the follower to).
				s.dispatch(p.c, true)
			case err != nil:
				conn.WriteError(errorText(err))
			default:
				writeResult(p.c, p.a, rs[0])
			}
		}
	}
}
