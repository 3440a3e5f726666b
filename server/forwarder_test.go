package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/throttledb/throttledb/fsm"
	"github.com/throttledb/throttledb/internal/resp"
	"github.com/tidwall/redcon"
)

// fakeLeader answers RAFT.PROPOSE requests on a loopback listener: each
// request's proposals go to reqs and its early marks to marks, and its
// reply (a grant for every command) is written only once the test sends a
// token on release. An empty version 2 request (the forwarder's probe) is
// answered at once. An old fake leader is a node from before version 2: it
// refuses a version 2 request as that node's code does.
type fakeLeader struct {
	addr    string
	old     bool
	reqs    chan [][]fsm.Command
	marks   chan []bool
	release chan struct{}
}

func startFakeLeader(t *testing.T, old bool) *fakeLeader {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	l := &fakeLeader{addr: ln.Addr().String(), old: old, reqs: make(chan [][]fsm.Command, 64),
		marks: make(chan []bool, 64), release: make(chan struct{}, 64)}
	type answer struct {
		props [][]fsm.Command
		now   []byte // written at once, when set
	}
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		t.Cleanup(func() { nc.Close() })
		toAnswer := make(chan answer, 64)
		go func() { // replies in request order, each once released
			for a := range toAnswer {
				if a.now != nil {
					if _, err := nc.Write(a.now); err != nil {
						return
					}
					continue
				}
				<-l.release
				outs := make([]rpcOutcome, len(a.props))
				for i, cmds := range a.props {
					outs[i].res = make([]fsm.Result, len(cmds))
					for j := range cmds {
						outs[i].res[j].Permit = fsm.Permit{Granted: true}
					}
				}
				body, err := appendProposeReply(nil, outs)
				if err != nil {
					panic(err)
				}
				if _, err := nc.Write(redcon.AppendBulk(nil, body)); err != nil {
					return
				}
			}
		}()
		defer close(toAnswer)
		rd := resp.NewCommandReader(nc, resp.CommandLimits{MaxBulkLen: 1 << 20, QueryBufferLimit: 1 << 20})
		for {
			batch, err := rd.ReadCommands(nil)
			if err != nil {
				return
			}
			for _, args := range batch {
				if l.old && args[1][0] != rpcVersion {
					toAnswer <- answer{now: redcon.AppendError(nil, fmt.Sprintf("ERR malformed forwarding RPC: version %d", args[1][0]))}
					continue
				}
				props, early, err := decodeProposeRequest(args[1])
				if err != nil {
					panic(err)
				}
				if len(props) == 0 {
					body, _ := appendProposeReply(nil, nil)
					toAnswer <- answer{now: redcon.AppendBulk(nil, body)}
					continue
				}
				l.reqs <- props
				l.marks <- early
				toAnswer <- answer{props: props}
			}
		}
	}()
	return l
}

// TestForwarderGathersWhileUnanswered: the forwarder sends a lone
// proposal at once; what is queued while that request is unanswered is
// sent as one request once it is answered, unless it fills a batch, which
// goes at once. Each proposal gets its own outcome.
func TestForwarderGathersWhileUnanswered(t *testing.T) {
	acquire := func(key string) fsm.Command { return fsm.Acquire{Key: key, Interval: 1000, Max: 1} }
	tests := []struct {
		name     string
		maxBatch int
		// whether the second request arrives before the first is
		// answered
		fullBatch bool
	}{
		{name: "not full: waits for the reply", maxBatch: 512},
		{name: "full: sent at once", maxBatch: 2, fullBatch: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leader := startFakeLeader(t, false)
			pools := resp.NewPools("", time.Second)
			defer pools.Close()
			f := newForwarder(pools, tc.maxBatch, time.Minute, slog.New(slog.NewTextHandler(io.Discard, nil)))
			f.hold = time.Hour // the promise, not a race against the clock
			go f.run()
			defer f.close()
			sub := f.to(leader.addr)
			ctx := context.Background()

			a, err := sub.enqueue(ctx, acquire("a"))
			if err != nil {
				t.Fatal(err)
			}
			if got := <-leader.reqs; len(got) != 1 {
				t.Fatalf("first request holds %d proposals, want 1", len(got))
			}
			<-leader.marks
			b, _ := sub.enqueue(ctx, acquire("b"))
			// Once the forwarder has taken b, it could send it alone;
			// it must gather c with it.
			for deadline := time.Now().Add(10 * time.Second); len(f.queue) > 0; {
				if time.Now().After(deadline) {
					t.Fatal("the forwarder never took b from its queue")
				}
				time.Sleep(time.Millisecond)
			}
			c, _ := sub.enqueue(ctx, acquire("c"))
			if !tc.fullBatch {
				leader.release <- struct{}{} // answer the first request
			}
			second := <-leader.reqs
			<-leader.marks
			if len(second) != 2 || second[0][0].(fsm.Acquire).Key != "b" || second[1][0].(fsm.Acquire).Key != "c" {
				t.Fatalf("second request holds %v, want b and c together", second)
			}
			if tc.fullBatch {
				leader.release <- struct{}{}
			}
			leader.release <- struct{}{}
			for _, pr := range []*proposal{a, b, c} {
				res, err := sub.await(pr)
				if err != nil || len(res) != 1 || !res[0].Permit.Granted {
					t.Fatalf("outcome of %v: %v, %v", pr.cmds, res, err)
				}
			}
		})
	}
}

// TestForwarderMarksEarly: a proposal queued with enqueueEarly reaches the
// leader marked, in a version 2 request, and one queued with enqueue
// unmarked; a leader from before version 2 (which refuses version 2) gets
// version 1 requests without marks, and every proposal is answered.
func TestForwarderMarksEarly(t *testing.T) {
	acquire := func(key string) fsm.Command { return fsm.Acquire{Key: key, Interval: 1000, Max: 1} }
	for _, old := range []bool{false, true} {
		t.Run(fmt.Sprintf("old=%v", old), func(t *testing.T) {
			leader := startFakeLeader(t, old)
			pools := resp.NewPools("", time.Second)
			defer pools.Close()
			f := newForwarder(pools, 512, time.Minute, slog.New(slog.NewTextHandler(io.Discard, nil)))
			go f.run()
			defer f.close()
			sub := f.to(leader.addr)
			ctx := context.Background()
			tests := []struct {
				key   string
				early bool
			}{{"a", true}, {"b", false}, {"c", true}}
			for _, tc := range tests {
				var pr *proposal
				var err error
				if tc.early {
					pr, err = sub.(earlySubmitter).enqueueEarly(ctx, acquire(tc.key))
				} else {
					pr, err = sub.enqueue(ctx, acquire(tc.key))
				}
				if err != nil {
					t.Fatal(err)
				}
				if got := <-leader.reqs; len(got) != 1 || got[0][0].(fsm.Acquire).Key != tc.key {
					t.Fatalf("request %v, want %s alone", got, tc.key)
				}
				marks := <-leader.marks
				want := tc.early && !old
				if got := marks != nil && marks[0]; got != want {
					t.Fatalf("%s marked early: %v (marks %v), want %v", tc.key, got, marks, want)
				}
				leader.release <- struct{}{}
				if res, err := sub.await(pr); err != nil || len(res) != 1 || !res[0].Permit.Granted {
					t.Fatalf("outcome of %s: %v, %v", tc.key, res, err)
				}
			}
		})
	}
}

// TestForwarderWaitsForReturningClients: once a reply has answered the
// proposals of two connections, a batch that is not full and has nothing
// in flight waits for the other connection to send again, and takes its
// proposal with it; with the wait off (--batch-wait no) it goes alone.
func TestForwarderWaitsForReturningClients(t *testing.T) {
	acquire := func(key string) fsm.Command { return fsm.Acquire{Key: key, Interval: 1000, Max: 1} }
	tests := []struct {
		name      string
		batchWait bool
		want      []string // keys of the second request
	}{
		{name: "waits", batchWait: true, want: []string{"a2", "b2"}},
		{name: "off", batchWait: false, want: []string{"a2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leader := startFakeLeader(t, false)
			pools := resp.NewPools("", time.Second)
			defer pools.Close()
			f := newForwarder(pools, 512, time.Minute, slog.New(slog.NewTextHandler(io.Discard, nil)))
			f.batchWait = tc.batchWait
			f.loop = 1              // clients that send again as soon as answered
			f.waitBound = time.Hour // the promise, not a race against the clock
			connA, connB := withOrigin(context.Background()), withOrigin(context.Background())
			// The last reply answered both connections.
			f.seq = 1
			f.replied([]*proposal{{from: connA.Value(originKey{}).(*origin)}, {from: connB.Value(originKey{}).(*origin)}}, 1, time.Now())
			go f.run()
			defer f.close()
			sub := f.to(leader.addr)

			a3, _ := sub.enqueue(connA, acquire("a2"))
			// Once the forwarder has taken a2 it could send it alone;
			// with the wait on, it must wait for B.
			for deadline := time.Now().Add(10 * time.Second); len(f.queue) > 0; {
				if time.Now().After(deadline) {
					t.Fatal("the forwarder never took a2 from its queue")
				}
				time.Sleep(time.Millisecond)
			}
			var got [][]fsm.Command
			if !tc.batchWait {
				got = <-leader.reqs
				<-leader.marks
			}
			b3, _ := sub.enqueue(connB, acquire("b2"))
			if tc.batchWait {
				got = <-leader.reqs
				<-leader.marks
			}
			var keys []string
			for _, cmds := range got {
				keys = append(keys, cmds[0].(fsm.Acquire).Key)
			}
			if fmt.Sprint(keys) != fmt.Sprint(tc.want) {
				t.Fatalf("request holds %v, want %v", keys, tc.want)
			}
			for range 2 {
				leader.release <- struct{}{}
			}
			for _, pr := range []*proposal{a3, b3} {
				if res, err := sub.await(pr); err != nil || len(res) != 1 || !res[0].Permit.Granted {
					t.Fatalf("outcome: %v, %v", res, err)
				}
			}
		})
	}
}

// TestForwarderCloseEndsWaitOnSilentLeader: a leader that accepts the
// forwarding connection and never answers holds the forwarder's run only
// until close, not for its timeout (an hour here), and the proposal waiting
// on it is answered with an error, never a grant.
func TestForwarderCloseEndsWaitOnSilentLeader(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go io.Copy(io.Discard, c) // reads everything, answers nothing
		}
	}()
	pools := resp.NewPools("", time.Second)
	defer pools.Close()
	f := newForwarder(pools, 512, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go f.run()
	sub := f.to(ln.Addr().String())
	pr, err := sub.enqueue(context.Background(), fsm.Acquire{Key: "k", Interval: 1000, Max: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Once the forwarder has taken the proposal, it is waiting on the
	// silent leader.
	for deadline := time.Now().Add(10 * time.Second); len(f.queue) > 0; {
		if time.Now().After(deadline) {
			t.Fatal("the forwarder never took the proposal")
		}
		time.Sleep(time.Millisecond)
	}
	f.close()
	select {
	case <-f.stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("the forwarder still waits on the silent leader 30 s after close")
	}
	if res, err := sub.await(pr); err == nil {
		t.Fatalf("answered %v with no error by a leader that never answered", res)
	}
}
