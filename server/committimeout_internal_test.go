package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/fsm"
)

// stalledFuture is a Raft future answered only once release is closed: an
// entry a leader keeps while a majority's log writes stall.
type stalledFuture struct {
	release chan struct{}
	err     error
	data    []byte
	fsm     *fsm.FSM
	once    sync.Once
	resp    any
}

func (f *stalledFuture) Error() error {
	<-f.release
	if f.err == nil {
		f.once.Do(func() { f.resp = applyAsRaft(f.fsm, f.data) })
	}
	return f.err
}
func (f *stalledFuture) Index() uint64 { return 1 }
func (f *stalledFuture) Response() any { return f.resp }

// holdingRaft hands out held futures: the first entry's is answered when
// the test closes release (with err), later ones at once.
type holdingRaft struct {
	fsm     *fsm.FSM
	release chan struct{}
	err     error
	mu      sync.Mutex
	n       int
}

func (r *holdingRaft) Apply(data []byte, _ time.Duration) raft.ApplyFuture {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	if r.n == 1 {
		return &stalledFuture{release: r.release, err: r.err, data: data, fsm: r.fsm}
	}
	open := make(chan struct{})
	close(open)
	return &stalledFuture{release: open, data: data, fsm: r.fsm}
}

// proposeWithin proposes cmd and fails the test if no outcome comes
// within a deadline far beyond any bound the proposer is given.
func proposeWithin(t *testing.T, p *proposer, cmd fsm.Command) (fsm.Result, error) {
	t.Helper()
	type result struct {
		res fsm.Result
		err error
	}
	ch := make(chan result, 1)
	go func() {
		res, err := p.propose(context.Background(), cmd)
		ch <- result{res, err}
	}()
	select {
	case r := <-ch:
		return r.res, r.err
	case <-time.After(30 * time.Second):
		t.Fatalf("%v: no outcome: the proposal waits for its commit without bound", cmd)
		return fsm.Result{}, nil
	}
}

// TestProposerCommitTimeout: an entry Raft keeps without answering (a
// stalled majority: the leader keeps its lease) is answered "outcome
// unknown" once the proposer's timeout passes, never a grant, and a
// proposal queued behind it is refused with CLUSTERDOWN (it never reached
// the log) rather than waiting too. What the entry holds (its in-flight
// token, its keys in flight) is held until Raft answers, whatever it
// answers; a leadership loss answered within the bound is still resolved.
func TestProposerCommitTimeout(t *testing.T) {
	acq := func(key string) fsm.Command { return fsm.Acquire{Key: key, Interval: 10, Max: 1, Slop: 1} }
	for _, tc := range []struct {
		name    string
		raftErr error // the held entry's final answer
	}{
		{name: "committed after the bound"},
		{name: "leadership lost after the bound", raftErr: raft.ErrLeadershipLost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &holdingRaft{fsm: fsm.New(fsm.Config{}), release: make(chan struct{}), err: tc.raftErr}
			p := newProposer(r, 8, 20*time.Millisecond, func() int64 { return 1000 })
			p.inflight = make(chan struct{}, 1)
			p.flight = newInFlight()
			p.queueWait = 20 * time.Millisecond
			var resolved atomic.Bool
			p.resolve = func(uint64, []byte) ([]fsm.Result, error) {
				resolved.Store(true)
				return nil, ErrOutcomeUnknown
			}
			go p.run()
			defer p.close()

			res, err := proposeWithin(t, p, acq("held"))
			if !errors.Is(err, ErrOutcomeUnknown) || !errors.Is(err, ErrCommitTimeout) || res.Permit.Granted {
				t.Fatalf("held entry: %+v, %v; want outcome unknown (commit timed out)", res, err)
			}
			// The held entry keeps the one in-flight token: the next is
			// never handed to Raft, and says so.
			res, err = proposeWithin(t, p, acq("queued"))
			if !errors.Is(err, ErrNoLeader) || !errors.Is(err, ErrCommitTimeout) || res.Permit.Granted {
				t.Fatalf("queued behind it: %+v, %v; want CLUSTERDOWN (not handed to Raft)", res, err)
			}
			if c, q := p.commitTimeouts.Load(), p.queueTimeouts.Load(); c != 1 || q != 1 {
				t.Fatalf("counted %d commit timeouts and %d queue timeouts, want 1 and 1", c, q)
			}
			p.flight.mu.Lock()
			held := p.flight.slot("held").acq
			p.flight.mu.Unlock()
			if held != 1 {
				t.Fatalf("the held entry's key counts %d in flight before Raft answered, want 1", held)
			}

			close(r.release)
			// The token comes back once Raft answers, and a new proposal
			// is committed (a key no earlier entry touched: granted).
			waitUntil(t, "the in-flight token to come back", func() bool { return len(p.inflight) == 0 })
			res, err = proposeWithin(t, p, acq("after"))
			if err != nil || !res.Permit.Granted {
				t.Fatalf("after Raft answered: %+v, %v; want a grant", res, err)
			}
			p.flight.mu.Lock()
			held, queued := p.flight.slot("held").acq, p.flight.slot("queued").acq
			p.flight.mu.Unlock()
			if held != 0 || queued != 0 {
				t.Fatalf("keys still in flight after Raft answered: held %d, queued %d", held, queued)
			}
			if resolved.Load() {
				t.Fatal("an entry already answered unknown was resolved again")
			}
		})
	}
}

// TestProposerResolvesWithinBound: a leadership loss Raft reports before
// the proposer's timeout is resolved (Server.resolveLost), and its result
// answered, however long resolving takes past the timeout.
func TestProposerResolvesWithinBound(t *testing.T) {
	committed := fsm.Result{Permit: fsm.Permit{Granted: true, ValidAt: 1000, ExpiresAt: 1001}}
	r := &fakeRaft{fsm: fsm.New(fsm.Config{}), err: raft.ErrLeadershipLost}
	timeout := 10 * time.Millisecond
	p := newProposer(r, 8, timeout, func() int64 { return 1000 })
	p.resolve = func(uint64, []byte) ([]fsm.Result, error) {
		<-time.After(20 * timeout) // well past the bound
		return []fsm.Result{committed}, nil
	}
	go p.run()
	defer p.close()
	res, err := proposeWithin(t, p, fsm.Acquire{Key: "k", Interval: 10, Max: 1, Slop: 1})
	if err != nil || res != committed {
		t.Fatalf("%+v, %v; want the resolved result %+v", res, err, committed)
	}
}

// stuckVoter is a Raft voter whose main loop is stuck, as on a stalled
// disk: its transport answers heartbeats (hashicorp/raft's fast path, apart
// from the main loop), so the leader keeps its lease, and nothing else.
type stuckVoter struct {
	ln    net.Listener
	trans *raft.NetworkTransport
	mu    sync.Mutex
	conns []net.Conn
}

func newStuckVoter(t *testing.T) *stuckVoter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	v := &stuckVoter{ln: ln}
	v.trans = raft.NewNetworkTransport(v, 3, 10*time.Second, io.Discard)
	v.trans.SetHeartbeatHandler(func(rpc raft.RPC) {
		cmd := rpc.Command.(*raft.AppendEntriesRequest)
		rpc.Respond(&raft.AppendEntriesResponse{Term: cmd.Term, Success: true}, nil)
	})
	go func() {
		for range v.trans.Consumer() { // never answered: the loop is stuck
		}
	}()
	return v
}

// Accept, Close, Addr and Dial make stuckVoter the transport's stream
// layer, so that close can break the connections the leader holds.
func (v *stuckVoter) Accept() (net.Conn, error) {
	c, err := v.ln.Accept()
	if err == nil {
		v.mu.Lock()
		v.conns = append(v.conns, c)
		v.mu.Unlock()
	}
	return c, err
}
func (v *stuckVoter) Close() error   { return v.ln.Close() }
func (v *stuckVoter) Addr() net.Addr { return v.ln.Addr() }
func (v *stuckVoter) Dial(a raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(a), timeout)
}

func (v *stuckVoter) close() {
	v.trans.Close()
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, c := range v.conns {
		c.Close()
	}
}

// TestStalledMajorityAnswersUnknown: with a majority of voters stuck
// (the leader keeps its lease and stays ready, its entries never commit),
// a client's ACQUIRE, on the leader or through a follower, is answered
// TRYAGAIN outcome unknown once the commit timeout passes: never a grant,
// never no reply. So is one sent after it, while the first entry is still
// held (CLUSTERDOWN, never reached the log, would do as well).
func TestStalledMajorityAnswersUnknown(t *testing.T) {
	for _, tc := range []struct {
		name        string
		viaFollower bool
	}{
		{name: "on the leader"},
		{name: "through a follower", viaFollower: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := func() Config {
				return Config{
					Addr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", DataDir: t.TempDir(),
					Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), NoSync: true,
					ApplyTimeout: time.Second, LeaderWait: time.Second,
					// A long lease (half the heartbeat timeout): the leader
					// must stay ready while its entries cannot commit, and
					// on a busy machine heartbeats are answered late.
					HeartbeatTimeout: 5 * time.Second, ElectionTimeout: 5 * time.Second,
				}
			}
			leader, err := Start(context.Background(), cfg())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { leader.Close() })
			waitUntil(t, "the leader to be ready", leader.isReady)
			// Once ready, the leader records its own RESP address through
			// the log (keepRegistered). Stalled behind the stuck voters,
			// that entry would hold the one entry in flight for the commit
			// timeout, and the first ACQUIRE could then wait longer than
			// LeaderWait to be handed to Raft: CLUSTERDOWN no leader (never
			// reached the log), not the outcome this test is about.
			waitUntil(t, "the leader to record its address", func() bool {
				addr, ok := leader.fsm.NodeAddr(leader.cfg.ID)
				return ok && addr == leader.advert
			})
			client := leader
			stuck := 1 // of 2 voters: a majority
			if tc.viaFollower {
				fc := cfg()
				fc.Join = []string{leader.Addr()}
				follower, err := Start(context.Background(), fc)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { follower.Close() })
				waitUntil(t, "the follower to join", func() bool {
					addr, ok := follower.leaderAddr()
					return ok && addr == leader.Addr() && len(leader.raft.Raft.Stats()) > 0 &&
						leader.raft.Raft.Stats()["num_peers"] == "1"
				})
				client = follower
				stuck = 2 // of 4 voters: with the leader, the follower is not a majority
			}
			for i := range stuck {
				v := newStuckVoter(t)
				t.Cleanup(v.close) // before the nodes close: it holds their connections
				// Not awaited: the last change needs the stuck voter's log.
				leader.raft.Raft.AddVoter(raft.ServerID(fmt.Sprint("stuck", i)), raft.ServerAddress(v.ln.Addr().String()), 0, 0)
			}
			rc := redis.NewClient(&redis.Options{Addr: client.Addr(), MaxRetries: -1, ReadTimeout: -1, DialTimeout: 5 * time.Second})
			t.Cleanup(func() { rc.Close() })
			for i, key := range []string{"first", "second"} {
				reply := make(chan error, 1)
				go func() { reply <- rc.Do(context.Background(), "THROTTLE.ACQUIRE", key, 1000, 1).Err() }()
				select {
				case err := <-reply:
					t.Logf("ACQUIRE %s: %v", key, err)
					if err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN outcome unknown") && !(i > 0 && strings.HasPrefix(err.Error(), "CLUSTERDOWN")) {
						t.Fatalf("ACQUIRE %s: %v; want TRYAGAIN outcome unknown (leader %v, ready %v)", key, err, leader.raft.State(), leader.isReady())
					}
				case <-time.After(60 * time.Second):
					t.Fatalf("ACQUIRE %s: no reply; leader %v, ready %v", key, leader.raft.State(), leader.isReady())
				}
			}
			if !leader.isReady() {
				t.Fatal("the leader lost its lease: the test did not stall a majority")
			}
			// Operators see the stall: INFO raft_commit_timeouts.
			fields := leader.infoSection("Raft")
			for i := 0; i+1 < len(fields); i += 2 {
				if fields[i] == "raft_commit_timeouts" && (fields[i+1] == "" || fields[i+1] == "0") {
					t.Fatalf("INFO raft_commit_timeouts:%s after a timed-out entry", fields[i+1])
				}
			}
			if !slices.Contains(fields, "raft_commit_timeouts") {
				t.Fatalf("no raft_commit_timeouts in INFO raft: %v", fields)
			}
		})
	}
}

// TestProposerRefusesTheRestOfALateRequest: when a forwarding request's
// proposal is refused for waiting too long behind a held entry, the rest
// of that request (queued with the same clock reading, see
// queueProposals) is refused too, even if the held entry has been answered
// meanwhile: the follower routes the first again, and it must not be
// applied after the proposals sent after it.
func TestProposerRefusesTheRestOfALateRequest(t *testing.T) {
	r := &holdingRaft{fsm: fsm.New(fsm.Config{}), release: make(chan struct{})}
	p := newProposer(r, 8, 20*time.Millisecond, func() int64 { return 1000 })
	p.inflight = make(chan struct{}, 1)
	p.queueWait = 20 * time.Millisecond
	go p.run()
	defer p.close()
	acq := func(key string) []fsm.Command {
		return []fsm.Command{fsm.Acquire{Key: key, Interval: 10, Max: 1, Slop: 1}}
	}
	if _, err := proposeWithin(t, p, acq("held")[0]); !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("held entry: %v; want outcome unknown", err)
	}
	queued := time.Now() // the request's one clock reading
	enqueue := func(key string) (fsm.Result, error) {
		pr := newProposal(acq(key))
		pr.queued = queued
		if _, err := p.enqueueProposal(context.Background(), pr); err != nil {
			t.Fatal(err)
		}
		res, err := p.await(pr)
		if err != nil {
			return fsm.Result{}, err
		}
		return res[0], nil
	}
	if res, err := enqueue("first"); !errors.Is(err, ErrNoLeader) || res.Permit.Granted {
		t.Fatalf("the request's first proposal: %+v, %v; want CLUSTERDOWN", res, err)
	}
	close(r.release)
	waitUntil(t, "the in-flight token to come back", func() bool { return len(p.inflight) == 0 })
	if res, err := enqueue("second"); !errors.Is(err, ErrNoLeader) || res.Permit.Granted {
		t.Fatalf("the request's second proposal: %+v, %v; want CLUSTERDOWN like the first", res, err)
	}
	if res, err := proposeWithin(t, p, acq("later")[0]); err != nil || !res.Permit.Granted {
		t.Fatalf("a proposal queued later: %+v, %v; want a grant", res, err)
	}
}
