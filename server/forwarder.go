package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/throttledb/throttledb/fsm"
	"github.com/throttledb/throttledb/internal/latency"
	"github.com/throttledb/throttledb/internal/resp"
)

// forwarder is a follower's side of the forwarding RPC (see rpc.go). The
// proposals of all of this node's client connections wait in one queue; a
// sender takes everything queued for the leader and sends it as one
// RAFT.PROPOSE on a persistent connection (resp.Pipe): a full batch at
// once, one that is not full once the leader has answered the requests
// before it (see run). So a follower's writes cost one round trip per
// batch rather than one per command, and batches reach the leader in the
// order they were queued, on one connection, so a client's pipelined
// commands apply in the order it sent them.
type forwarder struct {
	pools    *resp.Pools
	queue    chan *proposal
	maxBatch int           // commands per request
	inFlight int           // requests in flight on a connection
	timeout  time.Duration // for one request's reply
	log      *slog.Logger
	stop     chan struct{} // closed by close
	stopped  chan struct{} // closed when run has returned
	// ctx is the parent of every wait on the leader (the version probe, a
	// place among the requests in flight, a reply), each bounded by
	// timeout; close cancels it, so that a stop does not wait that out on
	// a leader that stopped answering.
	ctx      context.Context
	cancel   context.CancelFunc
	answered chan struct{} // a reply arrived (buffered, 1): see run
	hold     time.Duration // how long a batch that is not full may wait: see run

	// batchWait (not Config.NoBatchWait) lets a batch wait for the
	// clients the last reply answered: see waitReturns. Set before run
	// starts.
	batchWait bool
	// seq numbers the requests send writes (run's own); loop is the
	// moving average of the share of a batch's proposals whose connection
	// one of the last two replies answered (run's own). The newest
	// answered request: its number, when it was answered (Unix ns), its
	// round trip (ns), and how many of the connections it answered must
	// send again to end a wait (want); returned counts those that have
	// queued a proposal since, and the one that brings it to want signals
	// returns.
	seq uint64
	returnWait

	// lat times the forwarder's requests (INFO latency).
	lat forwardLatency

	last  atomic.Pointer[forwardTo] // see to
	pipes map[string]*leaderPipe    // by leader address; run's own
	req   []byte                    // the request being written; run's own, reused
}

// leaderPipe is a forwarding connection, the request version its leader
// takes (see probe), and the count of its requests not yet answered.
type leaderPipe struct {
	*resp.Pipe
	version    byte
	unanswered atomic.Int32
}

// forwardLatency times a follower's forwarding requests (INFO latency):
// a few atomic adds per request.
type forwardLatency struct {
	// gather: from run taking a batch's first proposal until the request
	// is written (the Nagle hold and the wait for returning clients).
	gather latency.Histogram
	// request: written until its reply arrived (the leader's queueing and
	// commit, and the round trip).
	request latency.Histogram
	// batch: commands per request; inflight: requests unanswered when one
	// is written, itself included.
	batch, inflight latency.Counter
}

// maxKeptRequest bounds the request buffer a forwarder keeps for the next
// request: a rare huge batch (a transaction of many commands) does not pin
// its memory.
const maxKeptRequest = 1 << 20

// maxHold bounds how long a batch that is not full waits for the reply to
// an earlier request before it is sent (see run): longer than a commit
// normally takes on a busy machine, short against --leader-wait.
const maxHold = 20 * time.Millisecond

func newForwarder(pools *resp.Pools, maxBatch int, timeout time.Duration, log *slog.Logger) *forwarder {
	ctx, cancel := context.WithCancel(context.Background())
	return &forwarder{
		ctx:        ctx,
		cancel:     cancel,
		pools:      pools,
		queue:      make(chan *proposal, maxBatch),
		maxBatch:   maxBatch,
		inFlight:   4,
		timeout:    timeout,
		log:        log,
		stop:       make(chan struct{}),
		stopped:    make(chan struct{}),
		answered:   make(chan struct{}, 1),
		hold:       maxHold,
		returnWait: returnWait{returns: make(chan struct{}, 1)},
		pipes:      make(map[string]*leaderPipe),
	}
}

// submitter queues proposals to be decided by the leader and waits for
// their outcome: the proposer on the leader, the forwarder on a follower.
// enqueue's proposals are applied in the order one goroutine enqueued
// them. await returns one result per command, or an error wrapping
// ErrNotLeader when the proposal certainly never entered the log (route it
// again), ErrOutcomeUnknown when it may have, or another error to answer.
type submitter interface {
	enqueue(ctx context.Context, cmds ...fsm.Command) (*proposal, error)
	await(pr *proposal) ([]fsm.Result, error)
}

// to returns the submitter that forwards to the leader at addr.
// The one made last is kept and handed out again while the leader stays
// the same, rather than a new one boxed per forwarded command.
func (f *forwarder) to(addr string) submitter {
	if t := f.last.Load(); t != nil && t.addr == addr {
		return t
	}
	t := &forwardTo{f, addr}
	f.last.Store(t)
	return t
}

type forwardTo struct {
	f    *forwarder
	addr string
}

// earlySubmitter is a submitter that can be told that the leader may
// answer a proposal without the log (see decidable): the forwarder.
type earlySubmitter interface {
	enqueueEarly(ctx context.Context, cmds ...fsm.Command) (*proposal, error)
}

// enqueue's proposals come from a pool; await gives them back once
// answered.
func (t forwardTo) enqueue(ctx context.Context, cmds ...fsm.Command) (*proposal, error) {
	return t.put(ctx, cmds, false)
}

// enqueueEarly is enqueue for a proposal forwarded marked as one the leader
// may decide early (rpc.go, rpcVersionEarly).
func (t forwardTo) enqueueEarly(ctx context.Context, cmds ...fsm.Command) (*proposal, error) {
	return t.put(ctx, cmds, true)
}

func (t forwardTo) put(ctx context.Context, cmds []fsm.Command, early bool) (*proposal, error) {
	pr := newProposal(cmds)
	from, _ := ctx.Value(originKey{}).(*origin)
	pr.addr, pr.early, pr.from = t.addr, early, from
	f := t.f
	select {
	case f.queue <- pr:
		// Not pr.from: once queued, pr may be answered and released.
		// A connection is counted once, at its first proposal since the
		// reply: a pipelining client sends many at once.
		if f.batchWait && from != nil {
			if a := from.forwarded.Load(); int64(a) == f.answeredSeq.Load() && from.returned.Swap(a) != a {
				f.returnedOne()
			}
		}
		return pr, nil
	default: // full: wait, within ctx (asked for only now: see lazyDeadline)
	}
	f.signalReturns() // a full queue ends a batch's wait
	select {
	case t.f.queue <- pr:
		return pr, nil
	case <-ctx.Done():
		pr.release() // never queued
		return nil, fmt.Errorf("%w: %w", ErrNoLeader, ctx.Err())
	case <-t.f.stop:
		pr.release()
		return nil, ErrShuttingDown
	}
}

func (t forwardTo) await(pr *proposal) ([]fsm.Result, error) {
	var o outcome
	select {
	case o = <-pr.done:
	case <-t.f.stopped:
		// run answers every proposal it took; one still queued was never
		// sent.
		select {
		case o = <-pr.done:
		default:
			return nil, ErrShuttingDown
		}
	}
	pr.release() // answered: the forwarder is done with it
	return o.res, o.err
}

// run sends batches until close.
func (f *forwarder) run() {
	defer close(f.stopped)
	defer func() {
		for _, p := range f.pipes {
			p.Close()
		}
	}()
	var held *proposal // taken from the queue, for another leader than its batch's
	for {
		first := held
		held = nil
		if first == nil {
			select {
			case <-f.stop:
				return
			case first = <-f.queue:
			}
		}
		began := time.Now()
		batch := []*proposal{first}
		n := len(first.cmds)
		// Why a batch that is not full waits while a request to the
		// same leader is unanswered (Nagle's rule): the leader commits
		// one entry at a time, and a request arriving while one is in
		// flight waits for the next anyway. Sent as the clients' commands
		// trickle in, a round of them would reach the leader as several
		// small requests and take several entries (several fsyncs);
		// gathered until the reply, they take one. A lone command never
		// waits (nothing is unanswered), and none waits more than
		// f.hold, so a stalled leader delays the next batch by no more.
		var hold *time.Timer
		waited := false // for returning clients: see waitReturns
	more:
		for n < f.maxBatch {
			var pr *proposal
			select {
			case pr = <-f.queue:
			default:
				if p := f.pipes[first.addr]; p == nil || p.unanswered.Load() == 0 {
					if waited || !f.batchWait {
						break more
					}
					waited = true
					if f.waitReturns(batch, n) {
						return // stopped: the batch was never sent
					}
					continue // take what came meanwhile
				}
				if hold == nil {
					hold = time.NewTimer(f.hold)
				}
				select {
				case pr = <-f.queue:
				case <-f.answered:
					continue // look again
				case <-hold.C:
					break more
				case <-f.stop:
					return // the batch was never sent: await says so
				}
			}
			if pr.addr != first.addr {
				held = pr
				break more
			}
			batch = append(batch, pr)
			n += len(pr.cmds)
		}
		if hold != nil {
			hold.Stop()
		}
		f.lat.gather.Since(began)
		f.send(first.addr, batch)
	}
}

// Why a batch waits for returning clients when nothing is in flight: the
// Nagle rule above sends a batch that is not full as soon as the reply
// before it arrives, and at that moment the clients that reply answers
// have not sent again yet. At one request in flight, then, clients that
// send again as soon as they are answered settle into two halves, one in
// each request, and every request takes a log entry of its own: measured
// (docs/performance.md, "Through a follower"), a follower's entries carried a third
// fewer commands than the leader's own, and every node's per-entry cost
// (log write, fsync, replication, apply) went up by half. So, as the
// leader's proposer does for its own clients (proposer.waitReturns), the
// batch waits for nine tenths of the connections the last reply answered
// to send again, at most that reply's round trip (and waitMaxLinger), and
// only while most proposals come from such connections (loop).

// waitReturns lets a batch wait, a bounded time, for the connections the
// last reply answered to send again (see above and returnWait); it
// reports whether the forwarder was stopped meanwhile.
func (f *forwarder) waitReturns(batch []*proposal, n int) bool {
	return f.wait(batch, n, f.maxBatch, func(o *origin) uint64 { return o.forwarded.Load() }, f.stop)
}

// replied records that the seq'th request, sent at sent, with batch, was
// answered (see waitReturns). It must run before any of batch's outcomes
// is handed over: an answered proposal may be released and reused.
func (f *forwarder) replied(batch []*proposal, seq uint64, sent time.Time) {
	var from int64
	for _, pr := range batch {
		if pr.from != nil && pr.from.forwarded.Load() != seq {
			pr.from.forwarded.Store(seq)
			from++ // connections, not proposals (as put counts them)
		}
	}
	now := time.Now()
	f.answeredBy(seq, from, now.Sub(sent), now)
}

// send writes batch as one request to the leader at addr and hands each
// proposal its outcome when the reply arrives. It returns once the request
// is written (or has failed), so that the next batch fills meanwhile; it
// blocks while inFlight requests await replies.
func (f *forwarder) send(addr string, batch []*proposal) {
	fail := func(err error) {
		for _, pr := range batch {
			pr.done <- outcome{err: err}
		}
	}
	pipe, err := f.pipe(addr)
	if err != nil {
		fail(fmt.Errorf("%w: %w", ErrNotLeader, err))
		return
	}
	props := make([][]fsm.Command, len(batch))
	var early []bool
	n := 0
	for i, pr := range batch {
		props[i] = pr.cmds
		n += len(pr.cmds)
		if pr.early && pipe.version == rpcVersionEarly {
			if early == nil {
				early = make([]bool, len(batch))
			}
			early[i] = true
		}
	}
	v := byte(rpcVersion)
	if early != nil {
		v = rpcVersionEarly
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.timeout)
	// Send copies the request before it returns, so f.req is reused.
	f.req = appendProposeRequest(f.req[:0], v, props, early)
	ch, err := pipe.Send(ctx, []byte("RAFT.PROPOSE"), f.req)
	if cap(f.req) > maxKeptRequest {
		f.req = nil
	}
	if err != nil {
		cancel()
		fail(forwardFailure(nil, err, false))
		return
	}
	for _, pr := range batch {
		pr.submitted.Store(true)
	}
	f.seq++
	seq, sent := f.seq, time.Now()
	f.lat.batch.Add(uint64(n))
	f.lat.inflight.Add(uint64(pipe.unanswered.Add(1)))
	go func() {
		defer cancel()
		defer func() {
			pipe.unanswered.Add(-1)
			select {
			case f.answered <- struct{}{}:
			default:
			}
		}()
		var r resp.PipeReply
		select {
		case r = <-ch:
			f.lat.request.Since(sent)
		case <-ctx.Done():
			// The leader has the request and did not answer in time: it
			// may have run it. A connection that stalls is not reused.
			pipe.Close()
			r.Err = ctx.Err()
		}
		outs, err := f.outcomes(r, len(batch))
		if err != nil {
			fail(err)
			return
		}
		if f.batchWait {
			f.replied(batch, seq, sent)
		}
		at := monoNow()
		for _, pr := range batch {
			if pr.from != nil {
				pr.from.answeredAt.Store(at)
			}
		}
		for i, pr := range batch {
			pr.done <- outcome{res: outs[i].res, err: outs[i].err}
		}
	}()
}

// outcomes interprets the reply to a request of n proposals.
func (f *forwarder) outcomes(r resp.PipeReply, n int) ([]rpcOutcome, error) {
	if err := forwardFailure(r.Raw, r.Err, false); err != nil {
		return nil, err
	}
	if resp.IsError(r.Raw) {
		// Refused as a whole (NOPERM, NOAUTH...): nothing was proposed.
		return nil, remoteError(resp.ErrorText(r.Raw))
	}
	payload, ok := bulkPayload(r.Raw)
	if !ok {
		return nil, fmt.Errorf("%w: %w: reply %q", ErrOutcomeUnknown, ErrBadRPC, r.Raw[:min(len(r.Raw), 32)])
	}
	outs, err := decodeProposeReply(payload, n)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	return outs, nil
}

// forwardFailure says what became of a request forwarded to the leader,
// given its raw reply or the transport's error err: nil when the leader
// answered (raw, perhaps an error reply of its own, is its answer);
// ErrNotLeader when the leader certainly did not run it, so that it is
// routed again: the leader said it is not the leader or is shutting down,
// or the request never left this node, or (retrySafe, for a request that
// may run twice: a read, an idempotent admin command) it failed in any way
// but a timeout; otherwise ErrOutcomeUnknown, as the request may have run.
// It is the one place a forwarding failure is given a meaning.
func forwardFailure(raw []byte, err error, retrySafe bool) error {
	switch {
	case err == nil && notServed(raw):
		return fmt.Errorf("%w: %s", ErrNotLeader, resp.ErrorText(raw))
	case err == nil:
		return nil
	case errors.Is(err, resp.ErrNotSent),
		retrySafe && !errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	default:
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
}

// pipe returns a working connection to the leader at addr, opening one if
// needed; connections to other addresses (former leaders) are closed.
func (f *forwarder) pipe(addr string) (*leaderPipe, error) {
	for a, p := range f.pipes {
		if a != addr || p.Err() != nil {
			p.Close()
			delete(f.pipes, a)
		}
	}
	if p := f.pipes[addr]; p != nil {
		return p, nil
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.timeout)
	defer cancel()
	pp, err := f.pools.Get(addr).OpenPipe(ctx, f.inFlight)
	if err != nil {
		f.log.Debug("forwarding connection failed", "to", addr, "err", err)
		return nil, err
	}
	p := &leaderPipe{Pipe: pp}
	if p.version, err = probe(ctx, pp); err != nil {
		pp.Close()
		f.log.Debug("forwarding connection failed", "to", addr, "err", err)
		return nil, err
	}
	f.pipes[addr] = p
	return p, nil
}

// probe asks a new forwarding connection's leader which request version it
// takes, with an empty version 2 request: a node from before version 2
// refuses it as malformed (and proposes nothing), one since decodes it and
// answers with no outcomes, or NOTLEADER when it is not the ready leader
// (which it checks after decoding). Any other answer is taken as
// version 1, which every node takes; a request that then fails, fails as
// it would have.
func probe(ctx context.Context, pp *resp.Pipe) (byte, error) {
	ch, err := pp.Send(ctx, []byte("RAFT.PROPOSE"), appendProposeRequest(nil, rpcVersionEarly, nil, nil))
	if err != nil {
		return 0, err
	}
	var r resp.PipeReply
	select {
	case r = <-ch:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if r.Err != nil {
		return 0, r.Err
	}
	// A node of either kind that is draining answers before decoding:
	// version 1 then, until the connection is opened again.
	if _, ok := bulkPayload(r.Raw); ok || bytes.HasPrefix(r.Raw, []byte("-NOTLEADER")) {
		return rpcVersionEarly, nil
	}
	return rpcVersion, nil
}

func (f *forwarder) close() {
	f.cancel()
	close(f.stop)
}

// bulkPayload returns the payload of a raw RESP bulk string.
func bulkPayload(raw []byte) ([]byte, bool) {
	if len(raw) < 4 || raw[0] != '$' {
		return nil, false
	}
	i := bytes.Index(raw, []byte("\r\n"))
	if i < 0 || !bytes.HasSuffix(raw, []byte("\r\n")) {
		return nil, false
	}
	body := raw[i+2 : len(raw)-2]
	n, ok := parseInt(raw[1:i])
	return body, ok && n == int64(len(body))
}

// forwardSession is a router's forwarding session (the Raft
// dissertation's client sessions, §6.3): a random id chosen once per
// process start and a counter that numbers every ACQUIRE and CANCEL the
// router forwards, so that the state machine can recognise a resend after
// an unknown outcome by (session, number) and answer it as the first
// attempt. It replaces a random token per command: no crypto/rand and
// base64 per command here, no string-keyed map entry and heap item per
// command on every replica (see fsm.SeqCost).
type forwardSession struct {
	id   uint64
	last atomic.Uint64 // the last number given
}

// newForwardSession returns a session with a random non-zero id: 8 bytes
// from crypto/rand. Two processes (or one process's two lives) that drew
// the same id would share numbers only with odds of about one in 2^64 per
// pair; even then a number reused for another key or kind is refused
// (fsm.ErrSequenceReused), never answered for the other command.
func newForwardSession() *forwardSession {
	for {
		var b [8]byte
		rand.Read(b[:]) // never fails (crypto/rand panics rather than return an error)
		if id := binary.LittleEndian.Uint64(b[:]); id != 0 {
			return &forwardSession{id: id}
		}
	}
}

// number returns cmds with a session and number on every ACQUIRE and CANCEL
// that has no identity yet, for forwarding (see router.decide), remembered
// by the state machine for window ms. A proposal's commands get
// consecutive numbers, so that they are encoded as one run
// (fsm.OpAcquireNext). A client's own token is kept, with the window it
// asked for, so that its retries and the follower's resends are one
// request to the state machine; so is a number given before, so that
// numbering a proposal again can never turn a resend into a new command.
func (s *forwardSession) number(cmds []fsm.Command, window int64) []fsm.Command {
	return s.numberInto(make([]fsm.Command, len(cmds)), cmds, window)
}

// numberInto is number writing into out, of len(cmds), which may be cmds
// itself (the router's ticket numbers its one command in place). A command
// that gets no number is copied as it is, not boxed again.
func (s *forwardSession) numberInto(out, cmds []fsm.Command, window int64) []fsm.Command {
	var n uint64
	for _, c := range cmds {
		switch c := c.(type) {
		case fsm.Acquire:
			if c.Token == "" && c.Session == 0 {
				n++
			}
		case fsm.Cancel:
			if c.Token == "" && c.Session == 0 {
				n++
			}
		}
	}
	next := s.last.Add(n) - n + 1
	for i, c := range cmds {
		switch c := c.(type) {
		case fsm.Acquire:
			if c.Token == "" && c.Session == 0 {
				c.Session, c.Seq, c.TokenWindow = s.id, next, window
				next++
				out[i] = c
				continue
			}
		case fsm.Cancel:
			if c.Token == "" && c.Session == 0 {
				c.Session, c.Seq, c.TokenWindow = s.id, next, window
				next++
				out[i] = c
				continue
			}
		}
		out[i] = cmds[i]
	}
	return out
}

// resendWindow returns how long after a forwarded proposal was first sent
// the router may still resend it (horizon), and how long the state machine
// remembers the session numbers the follower adds (window, ms): twice the
// horizon, so that a resend stamped late (queued at the leader, or by a
// leader whose clock is ahead) still finds the first attempt's numbers. The
// horizon covers one forward timeout (LeaderWait + ApplyTimeout) and a
// LeaderWait more to find a leader; both are capped by fsm.TokenWindow.
func resendWindow(leaderWait, applyTimeout time.Duration) (horizon time.Duration, window int64) {
	horizon = 2*leaderWait + applyTimeout
	if max := time.Duration(fsm.TokenWindow) * time.Millisecond / 2; horizon > max {
		horizon = max
	}
	return horizon, 2 * horizon.Milliseconds()
}

// resendable reports whether a proposal may be sent again after an unknown
// outcome: every command in it is an ACQUIRE or CANCEL with a token or a
// session number, which the state machine applies at most once. (A RESET
// sent twice would remove a key granted in between.)
func resendable(cmds []fsm.Command) bool {
	for _, c := range cmds {
		switch c := c.(type) {
		case fsm.Acquire:
			if c.Token == "" && c.Session == 0 {
				return false
			}
		case fsm.Cancel:
			if c.Token == "" && c.Session == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}
