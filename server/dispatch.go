package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/throttledb/throttledb/fsm"
	"github.com/throttledb/throttledb/internal/resp"
)

// pendingReply is one command of a batch on its way to its reply: answered
// at once (val, err), waiting to run (run), or queued to be decided by the
// leader (t).
type pendingReply struct {
	c    *call
	stat string // its commandstats name; "" when not counted as a call
	run  func(s *Server, c *call) (any, error)
	cmd  fsm.Command // parsed by its row's propose
	t    *ticket     // cmd, queued to the router's submitter
	val  any
	err  error
	// decided, if not nil, is a command answered at once with res (a
	// denial, see denyNow): kept apart from val so that its permit is
	// written without being boxed into a reply value.
	decided fsm.Command
	res     fsm.Result
	// active: counted in Server.active until its reply is written.
	active bool
}

// serveBatch serves the commands a connection read at once (a single
// command is a batch of one), in order, and writes their replies in order.
//
// Why queue: a command that goes through the log waits for a commit (an
// fsync and a replication round trip). Served one at a time, a client that
// pipelines would gain nothing. So each command with a propose (outside
// MULTI) is queued at once, to the proposer on the leader or the forwarder
// on a follower, where it shares log entries and forwarding requests with
// the rest; any other command first waits for the replies before it, then
// runs, so it sees their effects (THROTTLE.PEEK after ACQUIRE, EXEC after
// the ACQUIREs before MULTI). Proposals one connection queues apply in the
// order it queued them; when the router picks another submitter (the
// leader changed), the replies before are awaited first, so a client's
// commands never apply out of order.
func (s *Server) serveBatch(conn *clientConn, batch [][][]byte, rd *resp.CommandReader) {
	waiting := conn.waiting[:0]
	// The batch's calls, in memory the connection keeps from batch to
	// batch rather than one allocation per command: nothing holds a *call
	// once its reply is written.
	calls := conn.calls
	if cap(calls) < len(batch) {
		calls = make([]call, len(batch))
	}
	calls = calls[:len(batch)]
	tickets := conn.tickets // likewise, for the commands queued
	if cap(tickets) < len(batch) {
		tickets = make([]ticket, len(batch))
	}
	tickets = tickets[:len(batch)]
	var last submitter // where the waiting proposals were queued
	flush := func() {
		s.writeReplies(waiting)
		clear(waiting)
		waiting, last = waiting[:0], nil
	}
	for i, args := range batch {
		if conn.closed {
			break
		}
		conn.publish(args, rd)
		c := &calls[i]
		*c = call{conn: conn, sess: conn.sess, args: args}
		if !s.admit() {
			waiting = append(waiting, pendingReply{c: c, err: ErrShuttingDown})
			continue
		}
		p := s.prepare(c)
		p.active = true
		switch {
		case p.run != nil:
			flush()
			s.writeReply(&p, "")
		case p.cmd != nil && s.denyNow(&p, waiting):
			waiting = append(waiting, p)
		case p.cmd != nil:
			// On a follower, a command the leader may decide without the
			// log is marked so when forwarded (see decidable).
			early := !c.fwd && decidable(p.cmd, waiting)
			s.queue(&p, &tickets[i], early, func(sub submitter) {
				if last != nil && sub != last {
					flush()
				}
				last = sub
			})
			waiting = append(waiting, p)
		default:
			waiting = append(waiting, p)
		}
	}
	flush()
	conn.waiting = waiting
	clear(calls) // their arguments: the reader's buffers they point into can go
	conn.calls = calls
	clear(tickets) // their commands and proposals, every one answered
	conn.tickets = tickets
}

// serveAlone serves one command on its own and returns its reply: the
// command inside RAFT.FWD.
func (s *Server) serveAlone(c *call) (any, error) {
	p := s.prepare(c)
	if p.cmd != nil {
		s.queue(&p, new(ticket), false, nil)
	}
	return s.outcome(&p)
}

// admit counts a command in Server.active, so that a graceful shutdown
// waits for its reply, or reports false once the node is draining: the
// command is then answered "shutting down" without being run.
func (s *Server) admit() bool {
	s.drainMu.RLock()
	defer s.drainMu.RUnlock()
	if s.draining {
		return false
	}
	s.active.Add(1)
	return true
}

// prepare applies the rules every command passes (admissible), then the
// transaction rules (inside MULTI a command is queued, not run). A command
// that passes is left to run, or, if its row has propose, parsed into the
// fsm.Command to queue.
func (s *Server) prepare(c *call) pendingReply {
	p := pendingReply{c: c}
	row, err := admissible(c.sess, c.args)
	if row == nil {
		p.err = err
		c.sess.abortTx()
		return p
	}
	stat := s.stats.statName(row, c.args) // "client|list" for INFO commandstats
	switch {
	case err != nil:
		s.stats.reject(stat)
		if err != errNoAuth {
			c.sess.abortTx()
		}
		p.err = err
	case c.sess.tx != nil && !c.fwd && row.flags&flagTxControl == 0:
		if p.val, p.err = queueTx(c, row); p.err != nil {
			s.stats.reject(stat)
		}
	case row.propose != nil:
		p.stat = stat
		switch p.cmd, p.err = row.propose(c.args); {
		case errors.Is(p.err, errRead):
			p.cmd, p.err, p.run = nil, nil, row.run
		case p.err != nil:
			p.cmd = nil
		}
	default:
		p.stat, p.run = stat, row.run
	}
	return p
}

// admissible looks a command up and checks its arity and the session's
// authentication, in Redis's order: the one place these rules are
// written. It returns the command's row (nil when unknown) and, if the
// command may not run, the error to answer.
func admissible(sess *session, args [][]byte) (*command, error) {
	row := lookupCommand(args[0])
	switch {
	case row == nil:
		return nil, errUnknownCommand(args)
	case !arityOK(row.arity, len(args)):
		return row, errArity(row.name)
	case !sess.authed && row.flags&flagNoAuth == 0:
		return row, errNoAuth
	}
	return row, nil
}

// lookupCommand returns the table row of the command called name, in any
// ASCII case (Redis compares names with strcasecmp), or nil. Names are
// lowered into a stack buffer: strings.ToLower would allocate for every
// upper-case name, that is for nearly every command a client sends.
func lookupCommand(name []byte) *command {
	var buf [32]byte // longer than any command's name
	if len(name) > len(buf) {
		return nil
	}
	low := buf[:len(name)]
	for i, b := range name {
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		low[i] = b
	}
	return commands[string(low)]
}

// denyNow answers p at once, as the log would, when this node is the
// ready leader and the log would certainly deny it (see denier); mine are
// the connection's commands before it, not answered yet.
func (s *Server) denyNow(p *pendingReply, mine []pendingReply) bool {
	res, ok := s.deny.deny(p.cmd, mine)
	if ok {
		p.decided, p.res, p.cmd = p.cmd, res, nil
	}
	return ok
}

// queue hands p's command to the router, in t, without waiting for its
// outcome; settle, if not nil, is told the submitter first, and early says
// the leader may decide it without the log if it is forwarded (see
// router.enqueue). t must not be reused before p's outcome is written.
func (s *Server) queue(p *pendingReply, t *ticket, early bool, settle func(submitter)) {
	ctx := context.Background()
	if !p.c.fwd && p.c.conn != nil && p.c.conn.ctx != nil {
		ctx = p.c.conn.ctx // its origin: see proposer.waitReturns
	}
	if p.err = s.router.enqueueInto(t, ctx, p.c.fwd, early, settle, p.cmd); p.err != nil {
		p.cmd = nil
		return
	}
	p.t = t
}

// writeReplies writes the replies of ps in order, each once it is decided.
func (s *Server) writeReplies(ps []pendingReply) {
	queued := 0
	for i := range ps {
		if ps[i].t != nil {
			queued++
		}
	}
	if queued > 1 {
		s.pipelinedTotal.Add(int64(queued))
	}
	for i := range ps {
		next := "" // the command after the last: not known here
		if i+1 < len(ps) {
			next = ps[i+1].stat
		}
		s.writeReply(&ps[i], next)
	}
}

// writeReply writes p's reply, once it has run or its proposal is decided,
// and counts it: the one place a command's reply is written and counted.
// next is the commandstats name of the command whose reply is written
// right after p's, or "" if none or not known.
func (s *Server) writeReply(p *pendingReply, next string) {
	conn := p.c.conn
	errs := conn.errs
	s.writeOutcome(p)
	conn.fresh = false
	switch {
	case p.stat == "":
	case p.stat == next:
		// A command's time runs from the previous reply (or the batch's
		// start, see serveConn) to its own, so a run of calls of one
		// command took, together, from the run's start to its last reply:
		// the clock is read once per run (a reading costs ~90 ns on some
		// VMs, as much as the rest of a call's bookkeeping), and the last
		// call of the run adds the run's time.
		s.stats.record(p.stat, conn.tick, conn.tick, conn, errs)
	default:
		now := time.Now()
		s.stats.record(p.stat, conn.tick, now, conn, errs)
		conn.tick, conn.fresh = now, true
	}
	if p.active {
		s.active.Done()
	}
}

// outcome is p's reply: what its handler returns, what became of its
// proposal, or what it was answered at once.
func (s *Server) outcome(p *pendingReply) (any, error) {
	switch {
	case p.run != nil:
		return p.run(s, p.c)
	case p.t != nil:
		res, err := s.router.await(p.t)
		if err != nil {
			return nil, err
		}
		return resultReply(p.cmd, res[0]), nil
	case p.decided != nil:
		return resultReply(p.decided, p.res), nil
	}
	return p.val, p.err
}

// writeOutcome writes p's outcome. A proposal's or a denial's result is
// written as it is (writeResult), not boxed into a reply value first: that
// would be an allocation for nearly every command.
func (s *Server) writeOutcome(p *pendingReply) {
	switch {
	case p.run != nil:
	case p.t != nil:
		res, err := s.router.await(p.t)
		if err != nil {
			p.c.writeReply(nil, err)
			return
		}
		p.c.writeResult(p.cmd, res[0])
		return
	case p.decided != nil:
		p.c.writeResult(p.decided, p.res)
		return
	}
	p.c.writeReply(s.outcome(p))
}

// arityOK reports whether n arguments (the name counts) fit arity, in
// Redis's convention: n exactly, -n at least n.
func arityOK(arity, n int) bool {
	return (arity > 0 && n == arity) || (arity <= 0 && n >= -arity)
}

// unknownCommand is Redis's reply to an unknown command, quoting up to the
// first few arguments.
func unknownCommand(args [][]byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ERR unknown command '%s', with args beginning with: ", clip(args[0]))
	for i, a := range args[1:] {
		if i == 20 {
			break
		}
		fmt.Fprintf(&b, "'%s' ", clip(a))
	}
	return b.String()
}

// clip shortens an argument quoted in an error to 128 bytes, as Redis does,
// and keeps line breaks out of the one-line error reply.
func clip(a []byte) string {
	if len(a) > 128 {
		a = a[:128]
	}
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(string(a))
}

func unknownSubcommand(sub []byte, cmd string) string {
	return fmt.Sprintf("ERR unknown subcommand '%s'. Try %s HELP.", clip(sub), strings.ToUpper(cmd))
}

// parseInt parses a Redis integer argument.
func parseInt(b []byte) (int64, bool) {
	v, err := strconv.ParseInt(string(b), 10, 64)
	return v, err == nil
}
