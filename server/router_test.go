package server

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// scriptedView is a leaderView that changes with each routing attempt
// (each begins with a call to ready): attempt i sees states[min(i,
// len-1)].
type scriptedView struct {
	states  []viewState
	attempt int // attempts begun
}

type viewState struct {
	ready, leading bool
	leader         string // "" when unknown
}

func (v *scriptedView) now() viewState { return v.states[min(v.attempt-1, len(v.states)-1)] }

func (v *scriptedView) ready() bool {
	v.attempt++
	return v.now().ready
}
func (v *scriptedView) leading() bool { return v.now().leading }
func (v *scriptedView) leaderAddr() (string, bool) {
	return v.now().leader, v.now().leader != ""
}

func TestRouter(t *testing.T) {
	notLeader := fmt.Errorf("%w: raft said so", ErrNotLeader)
	leader := viewState{ready: true, leading: true}
	electing := viewState{leading: true}
	follower := viewState{leader: "10.0.0.1:6380"}
	orphan := viewState{}
	tests := []struct {
		name      string
		states    []viewState
		forwarded bool
		local     []error // result of each local call, in order
		remote    []error // result of each remote call, in order
		want      error
		calls     string // the sequence of calls made: L local, R remote
	}{
		{name: "leader runs it", states: []viewState{leader}, local: []error{nil}, calls: "L"},
		{name: "leader's final error", states: []viewState{leader}, local: []error{ErrOutcomeUnknown}, want: ErrOutcomeUnknown, calls: "L"},
		{name: "follower forwards", states: []viewState{follower}, remote: []error{nil}, calls: "R"},
		{name: "forwarded to a follower goes back", states: []viewState{follower}, forwarded: true, want: ErrNotLeader, calls: ""},
		{name: "lost leadership before logging: forwarded to the new leader", states: []viewState{leader, follower},
			local: []error{notLeader}, remote: []error{nil}, calls: "LR"},
		{name: "leader did not serve it: routed again", states: []viewState{follower, follower},
			remote: []error{notLeader, nil}, calls: "RR"},
		{name: "unknown outcome is final, never retried", states: []viewState{follower},
			remote: []error{ErrOutcomeUnknown}, want: ErrOutcomeUnknown, calls: "R"},
		{name: "new leader waits for its barrier", states: []viewState{electing, electing, leader}, local: []error{nil}, calls: "L"},
		{name: "no leader: CLUSTERDOWN", states: []viewState{orphan}, want: ErrNoLeader, calls: ""},
		{name: "forwarded to a leader that is not ready: waits", states: []viewState{electing, leader}, forwarded: true, local: []error{nil}, calls: "L"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			view := &scriptedView{states: tc.states}
			wait := 10 * time.Second
			if tc.want == ErrNoLeader {
				wait = 50 * time.Millisecond
			}
			r := &router{view: view, wait: wait, retry: time.Millisecond, stop: make(chan struct{})}
			var calls string
			next := func(results *[]error) error {
				if len(*results) == 0 {
					t.Fatalf("unexpected call after %q", calls)
				}
				err := (*results)[0]
				*results = (*results)[1:]
				return err
			}
			err := r.route(context.Background(), tc.forwarded,
				func(context.Context) error { calls += "L"; return next(&tc.local) },
				func(_ context.Context, addr string) error {
					if addr != follower.leader {
						t.Fatalf("forwarded to %q", addr)
					}
					calls += "R"
					return next(&tc.remote)
				})
			if calls != tc.calls {
				t.Errorf("calls %q, want %q", calls, tc.calls)
			}
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestRouterStops: a node that stops answers what is waiting for a leader
// with ErrShuttingDown.
func TestRouterStops(t *testing.T) {
	stop := make(chan struct{})
	r := &router{view: &scriptedView{states: []viewState{{}}}, wait: time.Hour, retry: time.Millisecond, stop: stop}
	close(stop)
	err := r.route(context.Background(), false,
		func(context.Context) error { t.Fatal("ran locally"); return nil },
		func(context.Context, string) error { t.Fatal("forwarded"); return nil })
	if !errors.Is(err, ErrShuttingDown) {
		t.Fatalf("err = %v, want ErrShuttingDown", err)
	}
}
