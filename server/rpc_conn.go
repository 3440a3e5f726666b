package server

import (
	"bufio"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/throttledb/throttledb/fsm"
	"github.com/tidwall/redcon"
)

// The leader's side of a forwarding connection. A follower pipelines
// RAFT.PROPOSE requests on one connection without waiting for replies; if
// the leader served them as it serves a client (one command's reply
// written before the next command is read), a follower could never have
// more than one request being committed. So a connection whose commands
// are all RAFT.PROPOSE is served as in tidwall/uhaha: the connection's
// goroutine keeps reading and queues each request's proposals at once (in
// order, so they apply in order); an rpcWriter awaits their outcomes and
// writes the replies in order.

// rpcPending is one RAFT.PROPOSE being decided: its queued proposals and
// the outcomes of those that could not be queued, or an immediate reply.
type rpcPending struct {
	queued []*proposal
	outs   []rpcOutcome
	reply  []byte // written as is when set
	active bool   // counted in Server.active
}

// rpcWriter writes a forwarding connection's replies in request order.
type rpcWriter struct {
	s       *Server
	c       *clientConn
	pending chan *rpcPending
	wg      sync.WaitGroup // pending not yet written
	done    chan struct{}  // closed when the writer has returned
}

// maxRPCInFlight bounds the requests of one connection being decided.
const maxRPCInFlight = 64

// isRPCBatch reports whether cmds are all RAFT.PROPOSE requests the
// session may send, by the rules every command passes (admissible,
// nodeOnly, no open transaction), so that they are served by the
// connection's rpcWriter. Anything else is served by serveBatch, which
// answers a refused command with the reason.
func (s *Server) isRPCBatch(sess *session, cmds [][][]byte) bool {
	if sess.tx != nil || s.nodeOnly(sess, "raft.propose") != nil {
		return false
	}
	for _, args := range cmds {
		if row, err := admissible(sess, args); err != nil || row.name != "raft.propose" {
			return false
		}
	}
	return true
}

func (s *Server) newRPCWriter(c *clientConn) *rpcWriter {
	w := &rpcWriter{s: s, c: c, pending: make(chan *rpcPending, maxRPCInFlight), done: make(chan struct{})}
	go w.run()
	return w
}

// serve queues the proposals of each request of cmds and hands them to
// the writer, without waiting for their outcomes.
func (w *rpcWriter) serve(cmds [][][]byte) {
	s := w.s
	s.lastRPC.Store(time.Now().UnixNano())
	for _, args := range cmds {
		p := &rpcPending{}
		// Counted as a command in flight, so that a graceful shutdown
		// waits for its reply; refused once the node is draining.
		admitted := s.admit()
		props, early, err := decodeProposeRequest(args[1])
		switch {
		case !admitted:
			p.reply = redcon.AppendError(nil, errorText(ErrShuttingDown))
		case err != nil:
			p.reply = redcon.AppendError(nil, errorText(err))
		case !s.isReady():
			p.reply = redcon.AppendError(nil, msgNotLeader)
		default:
			p.queued, p.outs = s.queueProposals(props, early)
		}
		p.active = admitted
		w.wg.Add(1)
		w.pending <- p
	}
}

// queueProposals queues props to the proposer, in order. Once one cannot
// be queued none after it is, so that they never apply out of order; their
// outcome says to route them again. A proposal marked early (early[i];
// early may be nil) that the log would certainly deny is answered at once
// instead (denier.denyForwarded): it is ordered before the proposals in
// flight, as a denial of this node's own client is.
func (s *Server) queueProposals(props [][]fsm.Command, early []bool) ([]*proposal, []rpcOutcome) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.LeaderWait)
	defer cancel()
	s.prop.requests.begin()
	defer s.prop.requests.end()
	queued := make([]*proposal, len(props))
	outs := make([]rpcOutcome, len(props))
	failed := false
	var now int64 // the clock for early decisions, read at the first (see denyForwarded)
	// The request's proposals are queued within microseconds of each other:
	// one clock reading stamps them all (INFO latency's queue time).
	var queuedAt time.Time
	for i, cmds := range props {
		if failed {
			outs[i].err = ErrNotLeader
			continue
		}
		if early != nil && early[i] {
			if now == 0 {
				now = s.deny.clock()
			}
			if res, ok := s.deny.denyForwarded(cmds, now); ok {
				outs[i].res = []fsm.Result{res}
				continue
			}
		}
		if queuedAt.IsZero() {
			queuedAt = time.Now()
		}
		pr := newProposal(cmds)
		pr.queued = queuedAt
		var err error
		if queued[i], err = s.prop.enqueueProposal(ctx, pr); err != nil {
			outs[i].err = fmt.Errorf("%w: %w", ErrNotLeader, err)
			failed = true
		}
	}
	return queued, outs
}

// awaitProposals waits for the outcomes of queued proposals and encodes
// the reply to their request.
func (s *Server) awaitProposals(queued []*proposal, outs []rpcOutcome) []byte {
	for i, pr := range queued {
		if pr != nil {
			var received bool
			outs[i].res, outs[i].err, received = s.prop.awaitOutcome(pr)
			if received {
				pr.release()
			}
		}
	}
	reply, err := appendProposeReply(nil, outs)
	if err != nil {
		return redcon.AppendError(nil, errorText(fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)))
	}
	return redcon.AppendBulk(nil, reply)
}

// decided reports whether every queued proposal already has its outcome
// (a waiter never blocks: the channel holds one).
func decided(queued []*proposal) bool {
	for _, pr := range queued {
		if pr != nil && len(pr.done) == 0 {
			return false
		}
	}
	return true
}

// drain waits until every reply handed to the writer is written, so that
// the connection may write a reply of its own.
func (w *rpcWriter) drain() { w.wg.Wait() }

// close stops the writer once it has written what it was given.
func (w *rpcWriter) close() {
	close(w.pending)
	<-w.done
}

func (w *rpcWriter) run() {
	defer close(w.done)
	bw := bufio.NewWriterSize(w.c.nc, 64<<10)
	failed := false
	for p := range w.pending {
		reply := p.reply
		if reply == nil {
			// Replies already written to bw go out before this request's
			// wait, not after it: the follower is waiting for them, and
			// this request may wait for a commit or more (a leadership
			// change: up to --leader-wait and --apply-timeout), long
			// enough for the follower to give a committed request up as
			// unknown.
			if !failed && bw.Buffered() > 0 && !decided(p.queued) {
				if err := bw.Flush(); err != nil {
					failed = true
					w.c.nc.Close()
				}
			}
			reply = w.s.awaitProposals(p.queued, p.outs)
		}
		if !failed {
			w.c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			_, err := bw.Write(reply)
			if err == nil && len(w.pending) == 0 {
				err = bw.Flush()
			}
			if err != nil {
				// The reader sees the connection closed and stops.
				failed = true
				w.c.nc.Close()
			}
		}
		if p.active {
			w.s.active.Done()
		}
		w.wg.Done()
	}
}

// Why an entry waits for the forwarding requests being queued: the
// connection's goroutine queues a request's proposals one by one
// (queueProposals), and on an idle leader the proposer, running on the
// other core, takes the first of them at once and proposes what has
// arrived so far, the rest making a second entry. Measured (docs/performance.md,
// "Through a follower"), a quarter to a third of a follower's requests
// became two entries, and an entry's cost (each node's log write and
// fsync, the AppendEntries round trips, each follower's apply) is mostly
// per entry.
// So while a request is being queued, a batch that has room takes its
// proposals as they come and is proposed once the request is queued.

// requestGate counts the forwarding requests whose proposals are being
// queued to the proposer: open, and done, signalled (capacity 1) when
// the count falls to zero.
type requestGate struct {
	open atomic.Int32
	done chan struct{}
}

// begin and end bracket the queueing of one request's proposals.
func (g *requestGate) begin() { g.open.Add(1) }

func (g *requestGate) end() {
	if g.open.Add(-1) == 0 {
		select {
		case g.done <- struct{}{}:
		default:
		}
	}
}

// takeRequests adds to batch, which holds n commands, the proposals of
// the requests being queued, as they arrive, until none is being queued
// or the batch is full (see requestGate); then whatever else is queued.
// Each wait ends with a proposal or a request queued, and a request's
// queueing ends within --leader-wait, so this cannot wait longer.
func (p *proposer) takeRequests(batch []*proposal, n int) ([]*proposal, int) {
	g := &p.requests
	if g.open.Load() == 0 {
		return batch, n
	}
	for n < p.maxBatch && g.open.Load() > 0 {
		select {
		case pr := <-p.ch:
			if p.admit(pr) {
				batch = append(batch, pr)
				n += len(pr.cmds)
			}
		case <-g.done: // perhaps an earlier request's: open says
		case <-p.stop:
			return batch, n // submitted anyway: Raft, shut down, answers it
		}
	}
	return p.take(batch, n)
}
