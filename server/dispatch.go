package server

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/redcon"
)

// serveRESP serves one command of a connection (see serveConn),
// except for a pipeline of THROTTLE.ACQUIREs, whose commands the leader
// queues together so that they share log entries (servePipeline).
func (s *Server) serveRESP(conn *clientConn, rc redcon.Command) {
	s.drainMu.RLock()
	if s.draining {
		s.drainMu.RUnlock()
		conn.WriteError(errorText(ErrShuttingDown))
		return
	}
	s.active.Add(1)
	s.drainMu.RUnlock()
	defer s.active.Done()
	sess := conn.sess
	if s.pipelined(conn, sess, rc) {
		s.servePipeline(conn, sess, append([]redcon.Command{rc}, conn.ReadPipeline()...))
		return
	}
	s.dispatch(&call{conn: conn, sess: sess, args: rc.Args})
}

// dispatch looks the command up, checks its arity and the session's
// authentication, and runs its handler, in Redis's order of checks.
func (s *Server) dispatch(c *call) {
	name := strings.ToLower(string(c.args[0]))
	cmd := commands[name]
	if cmd == nil {
		c.conn.WriteError(unknownCommand(c.args))
		c.sess.abortTx()
		return
	}
	stat := s.stats.statName(cmd, c.args) // "client|list" for INFO commandstats
	if !c.hasArity(cmd.name, cmd.arity) {
		s.stats.reject(stat)
		c.sess.abortTx()
		return
	}
	if !c.sess.authed && cmd.flags&flagNoAuth == 0 {
		s.stats.reject(stat)
		c.conn.WriteError(msgNoAuth)
		return
	}
	if c.sess.tx != nil && !c.fwd && cmd.flags&flagTxControl == 0 {
		errs := c.conn.errs
		queueTx(c, cmd)
		if c.conn.errs != errs {
			s.stats.reject(stat)
		}
		return
	}
	errs := c.conn.errs
	if cmd.run != nil {
		c.writeReply(cmd.run(s, c))
	} else {
		cmd.handler(s, c)
	}
	// One clock reading per command (they cost ~90 ns on some VMs): the
	// command's time runs from the previous command's end (or the batch's
	// start, see serveConn) to its own.
	now := time.Now()
	s.stats.record(stat, c.conn.tick, now, c.conn, errs)
	c.conn.tick = now
}

// hasArity reports whether the call has as many arguments as arity allows
// (Redis's convention: n exactly, -n at least n; the name counts), and
// answers Redis's wrong-arity error for name if not. dispatch checks every
// command with it, and handlers check again before they index args, so
// that no handler's safety depends on how it was reached.
func (c *call) hasArity(name string, arity int) bool {
	n := len(c.args)
	if (arity > 0 && n == arity) || (arity <= 0 && n >= -arity) {
		return true
	}
	c.conn.WriteError(wrongArity(name))
	return false
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
