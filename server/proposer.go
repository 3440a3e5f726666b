package server

import (
	"context"
	"errors"
	"fmt"
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
	queued    time.Time    // when enqueued (INFO latency)
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
}

func newProposer(r applier, maxBatch int, timeout time.Duration, clock func() int64) *proposer {
	return &proposer{
		raft:     r,
		ch:       make(chan *proposal, maxBatch),
		maxBatch: maxBatch,
		timeout:  timeout,
		clock:    clock,
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
		lat:      &proposerLatency{},
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
// wait for room in the queue.
func (p *proposer) enqueue(ctx context.Context, cmds ...fsm.Command) (*proposal, error) {
	pr := &proposal{cmds: cmds, done: make(chan outcome, 1), queued: time.Now()}
	p.flight.add(cmds)
	select {
	case p.ch <- pr:
		return pr, nil
	default: // full: wait, within ctx (asked for only now: see lazyDeadline)
	}
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
// one result per command.
func (p *proposer) await(pr *proposal) ([]fsm.Result, error) {
	select {
	case o := <-pr.done:
		return o.res, o.err
	case <-p.stopped:
		// Every proposal run took was handed to Raft, which answers it even
		// when shut down; one still in the queue never reached the log.
		if pr.submitted.Load() {
			o := <-pr.done
			return o.res, o.err
		}
		return nil, ErrShuttingDown
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
			batch = append(batch[:0], first)
			n := len(first.cmds)
		more:
			for n < p.maxBatch {
				select {
				case pr := <-p.ch:
					if p.admit(pr) {
						batch = append(batch, pr)
						n += len(pr.cmds)
					}
				default:
					break more
				}
			}
			p.submit(append([]*proposal(nil), batch...), n)
		}
	}
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

// submit proposes the n commands of batch as one log entry and, once Raft
// answers, hands each proposal its results.
func (p *proposer) submit(batch []*proposal, n int) {
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
		p.lat.raft.Since(start)
		if p.inflight != nil {
			<-p.inflight
		}
		defer func() {
			now := time.Now() // one clock reading for the whole batch
			for _, pr := range batch {
				p.lat.command.Record(now.Sub(pr.queued))
			}
		}()
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
