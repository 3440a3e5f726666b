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
	// queueWait, if positive (Config.LeaderWait), bounds how long a
	// proposal waits, from when it was queued, for an in-flight token:
	// one still waiting then is answered ErrNoLeader (see takeToken). Set
	// before run starts.
	queueWait time.Duration
	// tokenTimer is run's timer for takeToken, made once and reused.
	tokenTimer *time.Timer
	// commitTimeouts counts entries answered unknown because Raft had not
	// committed them within timeout (expire); queueTimeouts counts
	// proposals refused because they waited queueWait for their turn
	// (takeToken, admit). INFO raft_commit_timeouts, raft_queue_timeouts.
	commitTimeouts, queueTimeouts atomic.Int64
	// lateQueued is when the last proposal takeToken refused was queued
	// (run's own): admit refuses the proposals queued with it, the rest
	// of its forwarding request (one clock reading: queueProposals), so
	// that none of them is applied before it.
	lateQueued time.Time

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
// (wrapped) when the entry certainly never entered the log, ErrNoLeader
// when it waited too long to be handed to Raft (see takeToken), and
// ErrOutcomeUnknown when Raft cannot tell whether it was committed, or has
// not committed it within p.timeout (see entryWait). Once
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
				switch p.takeToken(first) {
				case tokenStopped:
					return // first was never submitted: await says so
				case tokenLate:
					continue
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

// takeToken's outcomes.
const (
	tokenTaken   = iota
	tokenLate    // first was refused: no token within queueWait
	tokenStopped // the proposer is closing
)

// takeToken takes an in-flight token for the entry first will start,
// waiting for one until queueWait after first was queued. A proposal that
// waited longer is refused rather than submitted late, with ErrNoLeader
// (it never reached the log): an entry Raft cannot commit (a stalled
// majority, see submit) keeps its token until Raft answers, and without
// this bound the proposals queued behind it would wait as long, with no
// reply at all. The bound also keeps a forwarded proposal's cluster time,
// stamped when it is submitted, within its resend window: a follower's
// resend of a proposal whose first attempt is still pending must find that
// attempt's session numbers remembered (resendWindow), which it cannot if
// it is stamped after the stall. The proposals queued after first have
// their own bound, checked when each comes first.
func (p *proposer) takeToken(first *proposal) int {
	select {
	case p.inflight <- struct{}{}:
		return tokenTaken
	default:
	}
	var late <-chan time.Time
	if p.queueWait > 0 {
		d := time.Until(first.queued.Add(p.queueWait))
		if p.tokenTimer == nil {
			p.tokenTimer = time.NewTimer(d)
		} else {
			p.tokenTimer.Reset(d) // Go 1.23 timers: no stale value to drain
		}
		defer p.tokenTimer.Stop()
		late = p.tokenTimer.C
	}
	select {
	case p.inflight <- struct{}{}:
		return tokenTaken
	case <-late:
		if p.gate != nil {
			p.gate.release(first.newKeys)
		}
		p.flight.done(first.cmds)
		p.lateQueued = first.queued
		p.queueTimeouts.Add(1)
		first.done <- outcome{err: p.errQueueTimeout()}
		return tokenLate
	case <-p.stop:
		return tokenStopped
	}
}

// errQueueTimeout is the outcome of a proposal takeToken refused.
func (p *proposer) errQueueTimeout() error {
	return fmt.Errorf("%w: %w: not handed to Raft within %v", ErrNoLeader, ErrCommitTimeout, p.queueWait)
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
	if !p.lateQueued.IsZero() && !pr.queued.After(p.lateQueued) {
		p.flight.done(pr.cmds)
		p.queueTimeouts.Add(1)
		pr.done <- outcome{err: p.errQueueTimeout()}
		return false
	}
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
// and, once Raft answers, hands each proposal its results; or, when Raft
// has not answered within p.timeout, ErrOutcomeUnknown (see entryWait).
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
	w := &entryWait{}
	if p.timeout > 0 {
		// Raft's own timeout bounds only the wait for room in its queue.
		w.timer = time.AfterFunc(p.timeout, func() { p.expire(w, batch) })
	}
	go func() {
		ferr := f.Error()
		done := time.Now()
		p.lat.raft.Record(done.Sub(start))
		if w.settle() {
			p.settleExpired(w, f, ferr, seq, start, done)
			return
		}
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
		p.recordAnswered(batch)
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

// entryWait is how a submitted entry's proposals are answered once: by the
// goroutine awaiting its future when Raft answers within the proposer's
// timeout (Config.ApplyTimeout), else by its timer, with ErrOutcomeUnknown.
//
// Why the timer: Raft's Apply timeout bounds only the wait to enter its
// queue. A leader whose majority's log writes stall (a disk stall) keeps
// its lease, as Raft answers heartbeats apart from its main loop, so it
// stays leader and its entries neither commit nor fail: without a bound
// their clients would wait as long as the stall, with no reply.
//
// Whoever claims the entry first answers it. Once the timer has answered,
// a proposal may be received, released and reused at once, so the timer
// first copies what the bookkeeping done when Raft answers still needs.
type entryWait struct {
	timer   *time.Timer
	mu      sync.Mutex
	claimed bool // answered, or being answered
	// Set by expire, under mu, before it answers: each proposal's
	// commands, gate keys and origin.
	cmds    [][]fsm.Command
	newKeys [][]string
	from    []*origin
}

// settle claims the entry for its future's goroutine, which has Raft's
// answer; it reports whether the timer had claimed it first (then the
// batch's proposals are no longer the caller's: settleExpired).
func (w *entryWait) settle() (expired bool) {
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	expired = w.claimed
	w.claimed = true
	return expired
}

// errCommitTimeout is the outcome of an entry Raft did not answer within
// the proposer's timeout.
func (p *proposer) errCommitTimeout() error {
	return fmt.Errorf("%w: %w: not committed within %v", ErrOutcomeUnknown, ErrCommitTimeout, p.timeout)
}

// expire answers batch, the proposals of entry w, with ErrOutcomeUnknown
// unless Raft has answered it first. The entry keeps its in-flight token,
// its keys in flight and in the memory gate until Raft answers: it may
// still be committed.
func (p *proposer) expire(w *entryWait, batch []*proposal) {
	w.mu.Lock()
	if w.claimed {
		w.mu.Unlock()
		return
	}
	w.claimed = true
	w.cmds = make([][]fsm.Command, len(batch))
	w.newKeys = make([][]string, len(batch))
	w.from = make([]*origin, len(batch))
	for i, pr := range batch {
		w.cmds[i], w.newKeys[i], w.from[i] = pr.cmds, pr.newKeys, pr.from
	}
	w.mu.Unlock()
	p.commitTimeouts.Add(1)
	err := p.errCommitTimeout()
	p.recordAnswered(batch)
	for _, pr := range batch {
		pr.done <- outcome{err: err}
	}
}

// recordAnswered times batch's commands (INFO latency_command) and marks
// their connections answered now (latency_reply), with one clock reading.
// It runs before any outcome is sent: a proposal whose outcome is received
// may be released and reused at once (see release).
func (p *proposer) recordAnswered(batch []*proposal) {
	now := time.Now()
	at := monoAt(now)
	for _, pr := range batch {
		p.lat.command.Record(now.Sub(pr.queued))
		if pr.from != nil {
			pr.from.answeredAt.Store(at)
		}
	}
}

// settleExpired is what remains, once Raft has answered f (ferr), of an
// entry whose proposals expire answered: the bookkeeping that must follow
// the entry's true fate, from the copies expire kept.
func (p *proposer) settleExpired(w *entryWait, f raft.ApplyFuture, ferr error, seq uint64, start, done time.Time) {
	if p.batchWait {
		var from int64
		for _, o := range w.from {
			if o != nil && o.answered.Load() != seq {
				o.answered.Store(seq)
				from++
			}
		}
		p.answeredBy(seq, from, done.Sub(start), done)
	}
	if p.inflight != nil {
		<-p.inflight
	}
	if p.gate != nil {
		for _, keys := range w.newKeys {
			p.gate.release(keys)
		}
	}
	if ferr == nil {
		// Committed after all: drop the results the log cache would keep.
		if box, ok := f.Response().(*appliedResults); ok {
			box.take()
		}
	}
	// Applied, or never will be by this leader: as in submit. A lost
	// leadership needs no resolve: the outcome was already answered.
	for _, cmds := range w.cmds {
		p.flight.done(cmds)
	}
}

func (p *proposer) close() { close(p.stop) }
