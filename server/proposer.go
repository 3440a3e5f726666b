package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/throttledb/throttledb/fsm"
)

// applier is the part of *raft.Raft the proposer needs.
type applier interface {
	Apply(cmd []byte, timeout time.Duration) raft.ApplyFuture
}

// proposal is one command, or the commands of one transaction, waiting to
// be committed. A proposal's commands always go into the same log entry,
// in order.
type proposal struct {
	cmds      []fsm.Command
	done      chan outcome // buffered: the waiter never blocks the proposer
	submitted atomic.Bool  // handed to Raft (or sent to the leader), which always answers it
	newKeys   []string     // keys gate counted as pending (see memGate.admit)
	addr      string       // forwarded: the leader's RESP address
	early     bool         // forwarded: the leader may decide it without the log (decidable)
	queued    time.Time    // when enqueued (INFO latency)
	from      *origin      // the client connection it came from, if known
}

// proposals recycles the proposals of the forwarding path (a follower's
// forwarder, the leader's RAFT.PROPOSE), each with its reply channel: two
// allocations per forwarded command on each side, a measurable share of
// both nodes' CPU at high load (docs/performance.md, "Through a follower").
var proposals = sync.Pool{New: func() any { return &proposal{done: make(chan outcome, 1)} }}

// newProposal returns a proposal of cmds from the pool. Whoever receives
// its outcome may give it back with release.
func newProposal(cmds []fsm.Command) *proposal {
	pr := proposals.Get().(*proposal)
	pr.cmds = cmds
	return pr
}

// release gives pr back to the pool once its outcome has been received
// from pr.done: only then has everyone who held it (the proposer, the
// forwarder) finished with it, as each sends the outcome last. The caller
// must not use pr afterwards.
func (pr *proposal) release() {
	pr.cmds, pr.newKeys, pr.addr, pr.from = nil, nil, "", nil
	pr.early, pr.queued = false, time.Time{}
	pr.submitted.Store(false)
	proposals.Put(pr)
}

// origin is one source of proposals, a client connection: the proposer
// stamps it with the entry that last answered it, to learn whether its
// clients send again as soon as they are answered (see waitReturns).
type origin struct {
	answered atomic.Uint64 // sequence number of that entry; 0: none yet
	// forwarded is, on a follower, the sequence number of the forwarding
	// request that last answered it, and returned that of the last such
	// request after which it sent again (see forwarder.waitReturns).
	forwarded, returned atomic.Uint64
	// answeredAt is when an outcome was last handed to the connection
	// (monoNow), set before the outcome is sent; the connection reads and
	// clears it once it has written its replies (INFO latency_reply).
	answeredAt atomic.Int64
}

// originKey is the context key under which a connection's *origin rides
// to proposer.enqueue.
type originKey struct{}

// withOrigin returns a context carrying a new origin: one per client
// connection, made once.
func withOrigin(ctx context.Context) context.Context {
	return context.WithValue(ctx, originKey{}, &origin{})
}

type outcome struct {
	res []fsm.Result // one per command
	err error
}

// proposer batches commands from concurrent connections into log entries,
// stamping each entry with the leader's wall clock: cluster time. Batching
// amortises the fsync and replication round trip of one entry over many
// commands; the FSM applies a batch's commands in order, as if one by one.
type proposer struct {
	raft     applier
	ch       chan *proposal
	maxBatch int
	timeout  time.Duration
	clock    func() int64
	stop     chan struct{} // closed by close
	stopped  chan struct{} // closed when run has returned
	// gate, if set (Config.MaxMemory), admits or refuses each proposal
	// before it joins a batch. Set before run starts.
	gate *memGate
	// resolve, if set, learns what became of an entry whose proposer lost
	// leadership while it was in flight (see Server.resolveLost). Set
	// before run starts.
	resolve func(index uint64, data []byte) ([]fsm.Result, error)
	// lat times the stages a proposal passes (INFO latency).
	lat *proposerLatency
	// inflight holds a token per entry handed to Raft and not yet
	// answered; its capacity (Config.MaxInFlight) bounds them. Nil: no
	// bound. Set before run starts.
	inflight chan struct{}
	// flight, if set, counts the keys of proposals from enqueue until
	// their entry is applied or refused (see inFlight). Set before run
	// starts.
	flight *inFlight

	// batchWait (not Config.NoBatchWait) lets a batch wait for the
	// clients the previous entry answered: see waitReturns. Set before run
	// starts.
	batchWait bool
	// seq numbers the entries run submits (run's own).
	seq uint64
	// returnWait is the wait for returning clients; an answer is an
	// entry, recorded before its in-flight token is given back, and its
	// time is Raft's commit.
	returnWait
	// requests tells run of forwarding requests being queued, so that an
	// entry takes a request's proposals whole (see requestGate).
	requests requestGate
}

func newProposer(r applier, maxBatch int, timeout time.Duration, clock func() int64) *proposer {
	return &proposer{
		raft:       r,
		ch:         make(chan *proposal, maxBatch),
		maxBatch:   maxBatch,
		timeout:    timeout,
		clock:      clock,
		stop:       make(chan struct{}),
		stopped:    make(chan struct{}),
		lat:        &proposerLatency{},
		returnWait: returnWait{returns: make(chan struct{}, 1)},
		requests:   requestGate{done: make(chan struct{}, 1)},
	}
}

// propose submits cmd and waits for its result. It returns ErrNotLeader
// (wrapped) when the entry certainly never entered the log, and
// ErrOutcomeUnknown when Raft cannot tell whether it was committed. Once
// submitted, it waits for the outcome even if ctx ends: abandoning it would
// leave the caller not knowing whether a slot was granted.
func (p *proposer) propose(ctx context.Context, cmd fsm.Command) (fsm.Result, error) {
	pr, err := p.enqueue(ctx, cmd)
	if err != nil {
		return fsm.Result{}, err
	}
	res, err := p.await(pr)
	if err != nil {
		return fsm.Result{}, err
	}
	return res[0], nil
}

// proposeAll is propose for several commands that must be applied
// together, in one log entry, with nothing in between (a transaction):
// they are all decided at the same cluster time, on the same state.
func (p *proposer) proposeAll(ctx context.Context, cmds ...fsm.Command) ([]fsm.Result, error) {
	pr, err := p.enqueue(ctx, cmds...)
	if err != nil {
		return nil, err
	}
	return p.await(pr)
}

// enqueue queues cmds (together, see proposal) for the next log entry
// without waiting for their outcome (see await). Proposals one goroutine
// enqueues are applied in the order it enqueued them: run takes them in
// channel order and Raft applies entries in log order. ctx bounds only the
// wait for room in the queue. The proposal comes from the pool: await gives
// it back once its outcome is received.
func (p *proposer) enqueue(ctx context.Context, cmds ...fsm.Command) (*proposal, error) {
	pr := newProposal(cmds)
	if _, err := p.enqueueProposal(ctx, pr); err != nil {
		pr.release() // never queued
		return nil, err
	}
	return pr, nil
}

// enqueueProposal is enqueue for a proposal made by the caller (a pooled
// one: newProposal), stamped queued now unless the caller has (one clock
// reading for a forwarding request's proposals: queueProposals).
func (p *proposer) enqueueProposal(ctx context.Context, pr *proposal) (*proposal, error) {
	cmds := pr.cmds
	if pr.queued.IsZero() {
		pr.queued = time.Now()
	}
	from, _ := ctx.Value(originKey{}).(*origin)
	pr.from = from // not pr.from below: once sent, pr may be answered and released
	p.flight.add(cmds)
	select {
	case p.ch <- pr:
		if p.batchWait && from != nil && int64(from.answered.Load()) == p.answeredSeq.Load() {
			p.returnedOne()
		}
		return pr, nil
	default: // full: wait, within ctx (asked for only now: see lazyDeadline)
	}
	p.signalReturns() // a full queue ends a batch's wait
	select {
	case p.ch <- pr:
		return pr, nil
	case <-ctx.Done():
		p.flight.done(cmds)
		return nil, fmt.Errorf("%w: %w", ErrNoLeader, ctx.Err())
	case <-p.stop:
		p.flight.done(cmds)
		return nil, ErrShuttingDown
	}
}

// await waits for the outcome of an enqueued proposal, as propose does:
// one result per command, and gives the proposal back to the pool once its
// outcome is received (see release): the caller must not use pr
// afterwards. Pooling matters on the leader's own path, where a proposal
// and its reply channel were two of a command's allocations.
func (p *proposer) await(pr *proposal) ([]fsm.Result, error) {
	res, err, received := p.awaitOutcome(pr)
	if received {
		pr.release()
	}
	return res, err
}

// awaitOutcome is await that also reports whether the outcome was received
// from pr.done (so that pr may be released); not when pr, still queued,
// never will be answered.
func (p *proposer) awaitOutcome(pr *proposal) ([]fsm.Result, error, bool) {
	select {
	case o := <-pr.done:
		return o.res, o.err, true
	case <-p.stopped:
		// Every proposal run took was handed to Raft, which answers it even
		// when shut down; one still in the queue never reached the log.
		if pr.submitted.Load() {
			o := <-pr.done
			return o.res, o.err, true
		}
		return nil, ErrShuttingDown, false
	}
}

// run proposes batches until close. Each entry's future is awaited on its own
// goroutine, so that up to cap(inflight) entries commit at once while the
// next batch fills; Raft keeps them in order.
func (p *proposer) run() {
	defer close(p.stopped)
	batch := make([]*proposal, 0, p.maxBatch)
	for {
		select {
		case <-p.stop:
			return
		case first := <-p.ch:
			if !p.admit(first) {
				continue
			}
			// Why wait here: handing Raft an entry whenever anything is
			// queued makes many small entries, and the leader writes its
			// log one store call at a time (INFO latency: each write and
			// fsync takes milliseconds), so throughput is commands per
			// entry over the write time. Waiting while the bound is
			// reached lets the next batch fill meanwhile.
			if p.inflight != nil {
				select {
				case p.inflight <- struct{}{}:
				case <-p.stop:
					return // first was never submitted: await says so
				}
			}
			var n int
			batch, n = p.take(append(batch[:0], first), len(first.cmds))
			batch, n = p.takeRequests(batch, n)
			if p.batchWait {
				batch, n = p.waitReturns(batch, n)
			}
			p.seq++
			p.submit(append([]*proposal(nil), batch...), n, p.seq)
		}
	}
}

// waitReturns lets batch wait for the clients the last entry answered to
// send again (see returnWait), then adds whatever was queued meanwhile.
func (p *proposer) waitReturns(batch []*proposal, n int) ([]*proposal, int) {
	// Stopped or not, the batch is submitted: Raft, shut down, answers it.
	p.wait(batch, n, p.maxBatch, func(o *origin) uint64 { return o.answered.Load() }, p.stop)
	return p.take(batch, n)
}

// take adds to batch, which holds n commands, the proposals already
// queued, up to maxBatch commands, without waiting; it returns the batch
// and its count.
func (p *proposer) take(batch []*proposal, n int) ([]*proposal, int) {
	for n < p.maxBatch {
		select {
		case pr := <-p.ch:
			if p.admit(pr) {
				batch = append(batch, pr)
				n += len(pr.cmds)
			}
		default:
			return batch, n
		}
	}
	return batch, n
}

// admit asks the gate, if any, whether pr may join the log, and answers a
// refused proposal with the gate's error (ErrOOM) at once. Refusing here,
// on the one goroutine every proposal passes, covers every route to the
// log, and the gate sees proposals in log order.
func (p *proposer) admit(pr *proposal) bool {
	if p.gate == nil {
		return true
	}
	keys, err := p.gate.admit(pr.cmds)
	if err != nil {
		p.flight.done(pr.cmds)
		pr.done <- outcome{err: err}
		return false
	}
	pr.newKeys = keys
	return true
}

// submit proposes the n commands of batch as one log entry, the seq'th,
// and, once Raft answers, hands each proposal its results.
func (p *proposer) submit(batch []*proposal, n int, seq uint64) {
	e := fsm.Entry{Now: p.clock(), Commands: make([]fsm.Command, 0, n)}
	start := time.Now()
	for _, pr := range batch {
		e.Commands = append(e.Commands, pr.cmds...)
		pr.submitted.Store(true)
		p.lat.queue.Record(start.Sub(pr.queued))
	}
	p.lat.batch.Add(uint64(n))
	data := e.Encode()
	f := p.raft.Apply(data, p.timeout)
	go func() {
		ferr := f.Error()
		done := time.Now()
		p.lat.raft.Record(done.Sub(start))
		if p.batchWait {
			var from int64
			for _, pr := range batch {
				if pr.from != nil && pr.from.answered.Load() != seq {
					pr.from.answered.Store(seq)
					from++ // connections, not proposals: see enqueue
				}
			}
			p.answeredBy(seq, from, done.Sub(start), done)
		}
		if p.inflight != nil {
			<-p.inflight
		}
		err := classifyApplyErr(ferr)
		if p.gate != nil {
			// Applied (the future answers after the FSM), or never
			// will be: either way no longer in flight.
			for _, pr := range batch {
				p.gate.release(pr.newKeys)
			}
		}
		var results []fsm.Result
		if errors.Is(ferr, raft.ErrLeadershipLost) && p.resolve != nil {
			// Leadership was lost with the entry in flight: the next
			// leader may still commit it. Learn which, rather than answer
			// "unknown".
			results, err = p.resolve(f.Index(), data)
			if err == nil && len(results) != n {
				err = fmt.Errorf("%w: %d results for %d commands", ErrOutcomeUnknown, len(results), n)
			}
		} else if err == nil {
			if box, ok := f.Response().(*appliedResults); ok {
				results = box.take()
			}
			if len(results) != n {
				err = fmt.Errorf("%w: unexpected apply response %T with %d results for %d commands", ErrOutcomeUnknown, f.Response(), len(results), n)
			}
		}
		// Recorded before any outcome is sent: a proposal whose outcome
		// is received may be released and reused at once (see release).
		now := time.Now() // one clock reading for the whole batch
		at := monoAt(now)
		for _, pr := range batch {
			p.lat.command.Record(now.Sub(pr.queued))
			if pr.from != nil {
				pr.from.answeredAt.Store(at)
			}
		}
		for _, pr := range batch {
			// Applied, or never will be by this leader (a new leader's
			// own entries are not in this view: see Server.fastDeny).
			p.flight.done(pr.cmds)
			if err != nil {
				pr.done <- outcome{err: err}
				continue
			}
			k := len(pr.cmds)
			pr.done <- outcome{res: results[:k:k]}
			results = results[k:]
		}
	}()
}

func (p *proposer) close() { close(p.stop) }
