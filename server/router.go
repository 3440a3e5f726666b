package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/throttledb/throttledb/fsm"
)

// leaderView is what the router needs to know about the cluster.
type leaderView interface {
	// ready reports whether this node is the leader and may serve: it has
	// applied, in its current term, everything earlier leaders committed.
	ready() bool
	// leading reports whether Raft considers this node the leader, ready
	// or not (a new leader waits for its barrier rather than forwarding).
	leading() bool
	// leaderAddr returns the RESP address of the leader, if it is known
	// and is another node.
	leaderAddr() (string, bool)
}

// router decides where a request that must run on the leader runs: here,
// when this node is the ready leader, or on the leader it is forwarded to.
// It alone owns waiting for a leader (up to wait, then CLUSTERDOWN),
// routing again when a request was not run (ErrNotLeader), and refusing
// work once the node stops.
//
// A request is two functions. local runs it here; remote sends it to the
// leader at addr. Either returns nil when it was served, an error wrapping
// ErrNotLeader when it certainly was not run (so it is routed again), or
// any other error, which is final (ErrOutcomeUnknown when it may have
// run). A request that arrived forwarded from another node is never
// forwarded again: it gets ErrNotLeader and its origin routes it again, so
// requests cannot loop between nodes.
type router struct {
	view   leaderView
	local  submitter                   // the proposer
	remote func(addr string) submitter // the forwarder, to the leader at addr
	wait   time.Duration               // how long to wait for a leader
	retry  time.Duration               // pause between routing attempts
	stop   <-chan struct{}             // closed when the node stops
	// A forwarded proposal whose outcome is unknown is resent only within
	// horizon of its first send; the session numbers the router adds to
	// it are remembered for window ms (see resendWindow).
	horizon time.Duration
	window  int64
	seqs    *forwardSession // numbers the commands it forwards
}

// route runs a request on the leader; see router.
func (r *router) route(ctx context.Context, forwarded bool,
	local func(context.Context) error, remote func(ctx context.Context, addr string) error) error {
	return r.routeWith(new(lazyDeadline), ctx, forwarded, local, remote)
}

// routeWith is route with the memory for its context given by the caller
// (a ticket's, see enqueueInto), so that routing a command allocates none.
func (r *router) routeWith(wait *lazyDeadline, ctx context.Context, forwarded bool,
	local func(context.Context) error, remote func(ctx context.Context, addr string) error) error {
	now := time.Now()
	*wait = lazyDeadline{parent: ctx, start: now, deadline: now.Add(r.wait)}
	defer wait.stop()
	ctx = wait
	for {
		var err error
		switch {
		case r.view.ready():
			err = local(ctx)
		case r.view.leading():
			// Elected, not ready yet: wait for the barrier.
			err = ErrNotLeader
		case forwarded:
			return ErrNotLeader
		default:
			err = ErrNotLeader
			if addr, ok := r.view.leaderAddr(); ok {
				err = remote(ctx, addr)
			}
		}
		if !errors.Is(err, ErrNotLeader) {
			return err
		}
		select {
		case <-ctx.Done():
			return ErrNoLeader
		case <-r.stop:
			return ErrShuttingDown
		case <-time.After(r.retry):
		}
	}
}

// lazyDeadline is the context route hands a request: it ends at deadline
// (or with parent), but makes its timer only when something first waits
// on it. Most requests are queued at once, into a queue with room, and
// never wait: a timer per command was a measurable share of a busy
// node's CPU.
type lazyDeadline struct {
	parent   context.Context
	start    time.Time // when routing began
	deadline time.Time
	once     sync.Once
	ctx      context.Context
	cancel   context.CancelFunc
}

func (l *lazyDeadline) get() context.Context {
	l.once.Do(func() { l.ctx, l.cancel = context.WithDeadline(l.parent, l.deadline) })
	return l.ctx
}

// Deadline implements context.Context.
func (l *lazyDeadline) Deadline() (time.Time, bool) { return l.deadline, true }

// Done implements context.Context.
func (l *lazyDeadline) Done() <-chan struct{} { return l.get().Done() }

// Err implements context.Context.
func (l *lazyDeadline) Err() error { return l.get().Err() }

// Value implements context.Context.
func (l *lazyDeadline) Value(key any) any { return l.parent.Value(key) }

// stop releases the timer, if one was made; from then on the context is
// done (canceled), as one from context.WithDeadline is after its cancel.
func (l *lazyDeadline) stop() {
	l.once.Do(func() { l.ctx = canceled }) // no timer is made after this
	if l.cancel != nil {
		l.cancel()
	}
}

// canceled is a context that is already done, shared by every stopped
// lazyDeadline that never made its own.
var canceled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// ticket is a proposal the router has queued: where, so that its outcome
// can be awaited, and what, so that it can be routed again.
//
// A client connection keeps its tickets from batch to batch (serveBatch),
// with the memory a command's routing needs (its one command, its wait's
// context), so that queuing a command allocates none of them.
type ticket struct {
	sub       submitter
	pr        *proposal
	cmds      []fsm.Command
	forwarded bool
	remote    bool           // queued to the forwarder: cmds carry session numbers
	sent      time.Time      // when routing began for cmds' first forward
	one       [1]fsm.Command // cmds' array (enqueueInto)
	wait      lazyDeadline   // route's context (see routeWith)
}

// enqueue queues cmd, one proposal, to the submitter for where it is
// decided now (the proposer on the ready leader, the forwarder to the
// leader on a follower) without waiting for its outcome; await has it.
// This and decide are the only ways commands reach the log on a client's
// behalf. settle, if not nil, is called with the submitter before cmd is
// queued to it, so that a caller can first wait for what it queued
// elsewhere (proposals reach the log in order only through one submitter).
// A proposal sent to the leader carries session numbers (see decide).
// early marks a forwarded proposal as one the leader may answer without
// the log if the log would certainly deny it (see decidable); it is given
// only here, to a proposal's first forward: a proposal routed again by
// await goes through the log, so a resend after an unknown outcome is
// never decided early while its first attempt may still be in flight.
func (r *router) enqueue(ctx context.Context, forwarded, early bool, settle func(submitter), cmds ...fsm.Command) (*ticket, error) {
	t := &ticket{forwarded: forwarded}
	// The ticket's own copy: a forwarded proposal is numbered in place.
	if err := r.queueTicket(t, ctx, early, settle, append([]fsm.Command(nil), cmds...)); err != nil {
		return nil, err
	}
	return t, nil
}

// enqueueInto is enqueue of one command into a ticket the caller provides,
// which it must not reuse before await has returned. The command is kept
// in the ticket (its proposal's commands are the ticket's, and one
// forwarded to the leader is numbered there), so that a command costs no
// allocation here: this runs for every command a client sends. No
// submitter holds a proposal's commands once it has answered it.
func (r *router) enqueueInto(t *ticket, ctx context.Context, forwarded, early bool, settle func(submitter), cmd fsm.Command) error {
	*t = ticket{forwarded: forwarded}
	t.one[0] = cmd
	return r.queueTicket(t, ctx, early, settle, t.one[:])
}

// queueTicket is enqueue's work, for t, which holds only forwarded yet;
// cmds are t's own.
func (r *router) queueTicket(t *ticket, ctx context.Context, early bool, settle func(submitter), cmds []fsm.Command) error {
	t.cmds = cmds
	forwarded := t.forwarded
	queue := func(ctx context.Context, sub submitter, use []fsm.Command, early bool) (err error) {
		if settle != nil {
			settle(sub)
		}
		t.sub, t.cmds = sub, use
		if e, ok := sub.(earlySubmitter); ok && early {
			t.pr, err = e.enqueueEarly(ctx, use...)
			return err
		}
		t.pr, err = sub.enqueue(ctx, use...)
		return err
	}
	return r.routeWith(&t.wait, ctx, forwarded,
		func(ctx context.Context) error { t.remote = false; return queue(ctx, r.local, t.cmds, false) },
		func(ctx context.Context, addr string) error {
			if !t.remote {
				// Routing began no later than the first forward, so the
				// resend horizon counted from it (see await) ends no
				// later than one counted from the send: a clock reading
				// less per forwarded command.
				t.remote, t.sent = true, t.wait.start
			}
			// t.cmds are t's own, numbered in place (a number given
			// before is kept, see number).
			return queue(ctx, r.remote(addr), r.seqs.numberInto(t.cmds, t.cmds, r.window), early)
		})
}

// await waits for the outcome of a proposal enqueue queued. One that
// certainly never entered the log (its submitter says ErrNotLeader: the
// leader changed meanwhile), or a forwarded one whose outcome is unknown
// and that is safe to resend (see decide), is routed again and decided on
// its own.
func (r *router) await(t *ticket) ([]fsm.Result, error) {
	res, err := t.sub.await(t.pr)
	t.pr = nil // released by the submitter: awaited once
	switch {
	case errors.Is(err, ErrNotLeader):
		return r.decide(context.Background(), t.forwarded, t.cmds...)
	case t.remote && errors.Is(err, ErrOutcomeUnknown) && resendable(t.cmds) && time.Since(t.sent) < r.horizon:
		res, again := r.decideFrom(context.Background(), t.forwarded, t.sent, err, t.cmds...)
		if errors.Is(again, ErrNoLeader) || errors.Is(again, ErrShuttingDown) {
			return nil, err // still unknown: say so, not CLUSTERDOWN
		}
		return res, again
	}
	return res, err
}

// decide queues cmds, one proposal, and waits for their outcome, routing
// them again for as long as they were certainly not run.
//
// A proposal forwarded to the leader carries an identity on every ACQUIRE
// and CANCEL (the client's token, or this router's forwarding session and
// a number: forwardSession.number), so that when its outcome is unknown
// (the connection to the leader broke, or the leader did not answer in
// time) it can be routed again: if the first attempt was committed, the
// state machine answers the resend from what it remembers without taking
// or giving back anything twice. The numbers added here are remembered
// only for the router's window, so the proposal is routed again only
// within its horizon of the first forward. Only when no leader answers by
// then is the client told the outcome is unknown.
func (r *router) decide(ctx context.Context, forwarded bool, cmds ...fsm.Command) ([]fsm.Result, error) {
	return r.decideFrom(ctx, forwarded, time.Time{}, nil, cmds...)
}

// decideFrom is decide for cmds first forwarded at sent (zero: not yet)
// whose outcome is unknown for the reason unknown (nil: not forwarded).
func (r *router) decideFrom(ctx context.Context, forwarded bool, sent time.Time, unknown error, cmds ...fsm.Command) ([]fsm.Result, error) {
	var (
		res     []fsm.Result
		tokened []fsm.Command // cmds numbered, from the first forward on
	)
	if !sent.IsZero() {
		tokened = cmds // they were forwarded, numbered
	}
	// late reports that an earlier forward, whose outcome is unknown, is
	// too old for its numbers to be trusted to catch another attempt.
	late := func() bool { return unknown != nil && time.Since(sent) >= r.horizon }
	err := r.route(ctx, forwarded,
		func(ctx context.Context) (err error) {
			if late() {
				return unknown
			}
			use := cmds
			if tokened != nil {
				use = tokened // an earlier forward may have been applied
			}
			res, err = proposeVia(ctx, r.local, use...)
			return err
		},
		func(ctx context.Context, addr string) (err error) {
			if late() {
				return unknown
			}
			if tokened == nil {
				tokened = r.seqs.number(cmds, r.window)
			}
			if sent.IsZero() {
				sent = time.Now()
			}
			res, err = proposeVia(ctx, r.remote(addr), tokened...)
			if errors.Is(err, ErrOutcomeUnknown) && resendable(tokened) {
				unknown = err
				if late() {
					return err
				}
				return fmt.Errorf("%w: %w", ErrNotLeader, err)
			}
			return err
		})
	if unknown != nil && (errors.Is(err, ErrNoLeader) || errors.Is(err, ErrShuttingDown)) {
		return nil, unknown
	}
	return res, err
}

// proposeVia queues cmds as one proposal and waits for its outcome.
func proposeVia(ctx context.Context, sub submitter, cmds ...fsm.Command) ([]fsm.Result, error) {
	pr, err := sub.enqueue(ctx, cmds...)
	if err != nil {
		return nil, err
	}
	return sub.await(pr)
}
