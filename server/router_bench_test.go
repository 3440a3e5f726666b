package server

import (
	"context"
	"testing"
	"time"

	"github.com/throttledb/throttledb/fsm"
)

// followerView is a leaderView of a follower whose leader is at one
// address.
type followerView struct{}

func (followerView) ready() bool                { return false }
func (followerView) leading() bool              { return false }
func (followerView) leaderAddr() (string, bool) { return "10.0.0.1:6380", true }

// answeringSubmitter answers every proposal at once with one result per
// command, from the pool as the forwarder does.
type answeringSubmitter struct{ res []fsm.Result }

func (s *answeringSubmitter) enqueue(_ context.Context, cmds ...fsm.Command) (*proposal, error) {
	pr := newProposal(cmds)
	pr.done <- outcome{res: s.res[:len(cmds)]}
	return pr, nil
}

func (s *answeringSubmitter) await(pr *proposal) ([]fsm.Result, error) {
	o := <-pr.done
	pr.release()
	return o.res, o.err
}

// BenchmarkRouterForward measures what a follower's router spends on one
// client command it forwards: enqueue (routing, the ticket, numbering) and
// await, with a submitter that answers at once. Run with -benchmem: the
// allocations per command are the point (docs/performance.md, "Through a follower").
func BenchmarkRouterForward(b *testing.B) {
	sub := &answeringSubmitter{res: make([]fsm.Result, 1)}
	r := &router{
		view:    followerView{},
		remote:  func(string) submitter { return sub },
		wait:    time.Second,
		retry:   time.Millisecond,
		stop:    make(chan struct{}),
		horizon: time.Minute,
		window:  120_000,
		seqs:    newForwardSession(),
	}
	ctx := context.Background()
	var cmd fsm.Command = fsm.Acquire{Key: "key:000000001234", Interval: 1000, Max: 5}
	b.ReportAllocs()
	for b.Loop() {
		t, err := r.enqueue(ctx, false, true, nil, cmd)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.await(t); err != nil {
			b.Fatal(err)
		}
	}
}
