package server

import (
	"context"
	"errors"
	"time"
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
	view  leaderView
	wait  time.Duration   // how long to wait for a leader
	retry time.Duration   // pause between routing attempts
	stop  <-chan struct{} // closed when the node stops
}

// route runs a request on the leader; see router.
func (r *router) route(ctx context.Context, forwarded bool,
	local func(context.Context) error, remote func(ctx context.Context, addr string) error) error {
	ctx, cancel := context.WithTimeout(ctx, r.wait)
	defer cancel()
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
