package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/throttledb/throttledb/fsm"
	"github.com/tidwall/redcon"
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

// fakeSubmitter records what it is asked, in a log shared with the other
// submitters of a test: "L+" for an enqueue on the submitter named L, "L?"
// for an await. Each await returns the next of outcomes (nil: a permit
// granted for every command).
type fakeSubmitter struct {
	name       string
	log        *[]string
	enqueueErr error
	outcomes   []error
	sent       [][]fsm.Command // what each enqueue was given
}

func (f *fakeSubmitter) enqueue(_ context.Context, cmds ...fsm.Command) (*proposal, error) {
	*f.log = append(*f.log, f.name+"+")
	f.sent = append(f.sent, cmds)
	if f.enqueueErr != nil {
		return nil, f.enqueueErr
	}
	return &proposal{cmds: cmds}, nil
}

// enqueueEarly is enqueue for a proposal marked early, logged "L!".
func (f *fakeSubmitter) enqueueEarly(ctx context.Context, cmds ...fsm.Command) (*proposal, error) {
	pr, err := f.enqueue(ctx, cmds...)
	(*f.log)[len(*f.log)-1] = f.name + "!"
	return pr, err
}

func (f *fakeSubmitter) await(pr *proposal) ([]fsm.Result, error) {
	*f.log = append(*f.log, f.name+"?")
	var err error
	if len(f.outcomes) > 0 {
		err, f.outcomes = f.outcomes[0], f.outcomes[1:]
	}
	if err != nil {
		return nil, err
	}
	res := make([]fsm.Result, len(pr.cmds))
	for i := range res {
		res[i].Permit = fsm.Permit{Granted: true, Pending: int64(len(*f.log))}
	}
	return res, nil
}

// fakeRouter is a router over a scripted view, a local submitter "L" and
// a forwarder whose submitter for each leader address is "R".
func fakeRouter(states []viewState, log *[]string, local, remote *fakeSubmitter) *router {
	local.name, local.log = "L", log
	remote.name, remote.log = "R", log
	return &router{
		view:    &scriptedView{states: states},
		local:   local,
		remote:  func(addr string) submitter { return remote },
		wait:    10 * time.Second,
		retry:   time.Millisecond,
		stop:    make(chan struct{}),
		horizon: time.Minute,
		window:  120_000,
		seqs:    newForwardSession(),
	}
}

// TestRouterQueues: proposals are queued where the router sends them
// without waiting; one that certainly never entered the log is routed
// again, and so is a forwarded one whose outcome is unknown when it is safe
// to resend (its ACQUIREs carry a token or a session number), with the
// same identities. A proposal queued early is marked ("R!") when it is
// first forwarded, and only then: never when it is decided here, nor when
// it is routed again after it certainly was not run or resent after an
// unknown outcome (its first attempt may still be in flight at the
// leader).
func TestRouterQueues(t *testing.T) {
	notLeader := fmt.Errorf("%w: raft said so", ErrNotLeader)
	leader := viewState{ready: true, leading: true}
	follower := viewState{leader: "10.0.0.1:6380"}
	tests := []struct {
		name          string
		states        []viewState
		forwarded     bool
		local, remote fakeSubmitter
		cmd           fsm.Command // default: an ACQUIRE without a token
		late          bool        // the resend horizon has passed (it is 0)
		early         bool        // queued as one the leader may decide early
		wantQueue     error       // from enqueue
		want          error       // from await
		log           string      // the submitters' calls, enqueue then await
	}{
		{name: "leader queues to its proposer", states: []viewState{leader}, log: "L+ L?"},
		{name: "follower queues to the forwarder", states: []viewState{follower}, log: "R+ R?"},
		{name: "forwarded to a follower: refused, nothing queued", states: []viewState{follower}, forwarded: true,
			wantQueue: ErrNotLeader, log: ""},
		{name: "proposer refuses before queueing: forwarded instead", states: []viewState{leader, follower},
			local: fakeSubmitter{enqueueErr: notLeader}, log: "L+ R+ R?"},
		{name: "not logged by the old leader: decided by the new one", states: []viewState{follower, leader},
			remote: fakeSubmitter{outcomes: []error{notLeader}}, log: "R+ R? L+ L?"},
		{name: "unknown outcome from the leader: resent with the same number", states: []viewState{follower},
			remote: fakeSubmitter{outcomes: []error{ErrOutcomeUnknown, nil}}, log: "R+ R? R+ R?"},
		{name: "unknown outcome past the resend horizon is final", states: []viewState{follower}, late: true,
			remote: fakeSubmitter{outcomes: []error{ErrOutcomeUnknown, nil}}, want: ErrOutcomeUnknown, log: "R+ R?"},
		{name: "a client's token is resent with its own window", states: []viewState{follower},
			cmd:    fsm.Acquire{Key: "k", Interval: 1000, Max: 1, Token: "mine"},
			remote: fakeSubmitter{outcomes: []error{ErrOutcomeUnknown, nil}}, log: "R+ R? R+ R?"},
		{name: "unknown outcome of a RESET is final: not safe to resend", states: []viewState{follower},
			cmd:    fsm.Reset{Keys: []string{"k"}},
			remote: fakeSubmitter{outcomes: []error{ErrOutcomeUnknown}}, want: ErrOutcomeUnknown, log: "R+ R?"},
		{name: "shutting down while queueing is final", states: []viewState{leader},
			local: fakeSubmitter{enqueueErr: ErrShuttingDown}, wantQueue: ErrShuttingDown, log: "L+"},
		{name: "early, follower: marked", states: []viewState{follower}, early: true, log: "R! R?"},
		{name: "early, leader: never marked", states: []viewState{leader}, early: true, log: "L+ L?"},
		{name: "early, refused by the proposer, then forwarded: marked", states: []viewState{leader, follower}, early: true,
			local: fakeSubmitter{enqueueErr: notLeader}, log: "L+ R! R?"},
		{name: "early, not run, routed again: unmarked", states: []viewState{follower}, early: true,
			remote: fakeSubmitter{outcomes: []error{notLeader}}, log: "R! R? R+ R?"},
		{name: "early, unknown outcome, resent: unmarked", states: []viewState{follower}, early: true,
			remote: fakeSubmitter{outcomes: []error{ErrOutcomeUnknown}}, log: "R! R? R+ R?"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log []string
			r := fakeRouter(tc.states, &log, &tc.local, &tc.remote)
			if tc.late {
				r.horizon = 0
			}
			var settled []string
			cmd := tc.cmd
			if cmd == nil {
				cmd = fsm.Acquire{Key: "k", Interval: 1000, Max: 1}
			}
			tk, err := r.enqueue(context.Background(), tc.forwarded, tc.early, func(sub submitter) {
				settled = append(settled, sub.(*fakeSubmitter).name)
			}, cmd)
			if tc.wantQueue != nil {
				if !errors.Is(err, tc.wantQueue) || tk != nil {
					t.Fatalf("enqueue: %v, %v; want %v", tk, err, tc.wantQueue)
				}
			} else {
				if err != nil {
					t.Fatalf("enqueue: %v", err)
				}
				res, err := r.await(tk)
				if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
					t.Fatalf("await: %v, want %v", err, tc.want)
				}
				if err == nil && (len(res) != 1 || !res[0].Permit.Granted) {
					t.Fatalf("await: %v", res)
				}
				// Whatever reaches the leader from here carries one
				// identity, the same on every resend: the client's token
				// with its window, or the router's session and a number,
				// remembered for the router's window.
				var first *fsm.Acquire
				for _, sent := range tc.remote.sent {
					a, ok := sent[0].(fsm.Acquire)
					if !ok {
						continue
					}
					orig := cmd.(fsm.Acquire)
					switch {
					case orig.Token != "" && (a.Token != orig.Token || a.TokenWindow != orig.TokenWindow || a.Session != 0):
						t.Fatalf("forwarded %+v for %+v: not the client's token", a, orig)
					case orig.Token == "" && (a.Session != r.seqs.id || a.Seq == 0 || a.TokenWindow != r.window):
						t.Fatalf("forwarded %+v for %+v: not numbered in session %x, window %d", a, orig, r.seqs.id, r.window)
					case first != nil && a != *first:
						t.Fatalf("resent %+v, first sent %+v", a, *first)
					}
					first = &a
				}
			}
			if got := strings.Join(log, " "); got != tc.log {
				t.Errorf("calls %q, want %q", got, tc.log)
			}
			// settle hears of every submitter before anything is queued
			// to it.
			var enqueued []string
			for _, l := range log {
				if (strings.HasSuffix(l, "+") || strings.HasSuffix(l, "!")) && len(enqueued) < len(settled) {
					enqueued = append(enqueued, l[:len(l)-1])
				}
			}
			if !reflect.DeepEqual(settled, enqueued) {
				t.Errorf("settle heard of %v, enqueued on %v", settled, enqueued)
			}
		})
	}
}

// TestServeBatchOrder: the connection loop queues every THROTTLE.ACQUIRE
// of a batch without waiting, waits for the replies before a command that
// does not go through the log (so it sees their effects), and when the
// leader changes in the middle of a batch it waits for what it queued to
// the old one before queueing to the new one, so that a client's commands
// apply in the order it sent them. The replies come out in order, with a
// refused command's error in its place.
func TestServeBatchOrder(t *testing.T) {
	leader := viewState{ready: true, leading: true}
	follower := viewState{leader: "10.0.0.1:6380"}
	acquire := func(key string) [][]byte {
		return [][]byte{[]byte("THROTTLE.ACQUIRE"), []byte(key), []byte("1000"), []byte("5")}
	}
	tests := []struct {
		name    string
		states  []viewState // one per routing attempt: one per queued command here
		batch   [][][]byte
		log     string
		replies string
	}{
		{name: "pipeline on the leader", states: []viewState{leader},
			batch: [][][]byte{acquire("a"), acquire("b"), acquire("c")},
			log:   "L+ L+ L+ L? L? L?", replies: "*5\r\n:1\r\n"},
		{name: "a read waits for the writes before it", states: []viewState{follower},
			batch: [][][]byte{acquire("a"), acquire("b"), {[]byte("PING")}, acquire("c")},
			log:   "R! R! R? R? R! R?", replies: "+PONG\r\n"},
		{name: "leader changes mid-batch: the old leader's replies first", states: []viewState{follower, follower, leader},
			batch: [][][]byte{acquire("a"), acquire("b"), acquire("c")},
			log:   "R! R! R? R? L+ L?"},
		// Forwarded calls are marked early (R!) unless a call of the
		// connection on the key is still unanswered, or the call has an ID.
		{name: "a call behind another on its key is not marked", states: []viewState{follower},
			batch: [][][]byte{acquire("a"), acquire("a"), acquire("b"), {[]byte("PING")}, acquire("a")},
			log:   "R! R+ R! R? R? R? R! R?", replies: "+PONG\r\n"},
		{name: "a call with an ID is not marked", states: []viewState{follower},
			batch: [][][]byte{append(acquire("a"), []byte("ID"), []byte("x")), acquire("b")},
			log:   "R+ R! R? R?"},
		{name: "refused commands answer in place, queue nothing", states: []viewState{leader},
			batch: [][][]byte{acquire("a"), {[]byte("THROTTLE.ACQUIRE"), []byte("b"), []byte("x"), []byte("5")}, {[]byte("THROTTLE.ACQUIRE")}, acquire("c")},
			log:   "L+ L+ L? L?", replies: "-ERR value is not an integer or out of range\r\n-ERR wrong number of arguments for 'throttle.acquire' command\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log []string
			s := &Server{stats: newServerStats()}
			s.router = fakeRouter(tc.states, &log, &fakeSubmitter{}, &fakeSubmitter{})
			var out bytes.Buffer
			conn := &clientConn{Writer: redcon.NewWriter(&out), sess: &session{authed: true}, stats: s.stats}
			s.serveBatch(conn, tc.batch, nil)
			if err := conn.Flush(); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(log, " "); got != tc.log {
				t.Errorf("calls %q, want %q", got, tc.log)
			}
			if !strings.Contains(out.String(), tc.replies) {
				t.Errorf("replies %q, want them to hold %q", out.String(), tc.replies)
			}
			if n := strings.Count(out.String(), "*5\r\n") + strings.Count(out.String(), "+PONG\r\n") + strings.Count(out.String(), "-ERR"); n != len(tc.batch) {
				t.Errorf("%d replies to %d commands: %q", n, len(tc.batch), out.String())
			}
		})
	}
}

// TestRouterDecideResends: decide (the path of EXEC) resends a forwarded
// proposal whose outcome is unknown with the same numbers within the resend
// horizon, and not after it.
func TestRouterDecideResends(t *testing.T) {
	follower := viewState{leader: "10.0.0.1:6380"}
	for _, tc := range []struct {
		name string
		late bool
		want error
		log  string
	}{
		{name: "within the horizon: resent", log: "R+ R? R+ R?"},
		{name: "past the horizon: unknown", late: true, want: ErrOutcomeUnknown, log: "R+ R?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log []string
			remote := &fakeSubmitter{outcomes: []error{ErrOutcomeUnknown, nil}}
			r := fakeRouter([]viewState{follower}, &log, &fakeSubmitter{}, remote)
			if tc.late {
				r.horizon = 0
			}
			_, err := r.decide(context.Background(), false,
				fsm.Acquire{Key: "k", Interval: 1000, Max: 1}, fsm.Cancel{Key: "k", ValidAt: 5})
			if (tc.want == nil) != (err == nil) || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("decide: %v, want %v", err, tc.want)
			}
			if got := strings.Join(log, " "); got != tc.log {
				t.Errorf("calls %q, want %q", got, tc.log)
			}
			if len(remote.sent) == 2 && !reflect.DeepEqual(remote.sent[0], remote.sent[1]) {
				t.Errorf("resent %+v, first sent %+v", remote.sent[1], remote.sent[0])
			}
			// Numbered consecutively in the router's session, with its
			// window, so that the leader encodes them as one run.
			for i, c := range remote.sent[0] {
				var session, seq uint64
				var window int64
				switch c := c.(type) {
				case fsm.Acquire:
					session, seq, window = c.Session, c.Seq, c.TokenWindow
				case fsm.Cancel:
					session, seq, window = c.Session, c.Seq, c.TokenWindow
				}
				if session != r.seqs.id || seq != uint64(i+1) || window != r.window {
					t.Errorf("forwarded %+v: want session %x, number %d, window %d", c, r.seqs.id, i+1, r.window)
				}
			}
		})
	}
}

// TestResendWindow: the tokens a follower adds are remembered for twice
// the time it may resend, which covers a forward's timeout and a wait for
// a leader, and never longer than the state machine's TokenWindow.
func TestResendWindow(t *testing.T) {
	for _, tc := range []struct {
		wait, apply time.Duration
		horizon     time.Duration
		window      int64
	}{
		{2 * time.Second, 5 * time.Second, 9 * time.Second, 18_000},
		{100 * time.Millisecond, time.Second, 1200 * time.Millisecond, 2400},
		{time.Minute, 5 * time.Second, 30 * time.Second, fsm.TokenWindow},
	} {
		h, w := resendWindow(tc.wait, tc.apply)
		if h != tc.horizon || w != tc.window {
			t.Errorf("resendWindow(%v, %v) = %v, %d; want %v, %d", tc.wait, tc.apply, h, w, tc.horizon, tc.window)
		}
		if err := fsm.ValidateTokenWindow(w); err != nil {
			t.Errorf("window %d: %v", w, err)
		}
	}
}

// TestLazyDeadline: the route context makes no timer until waited on, ends
// at its deadline when waited on, and is done once stopped whether or not
// a timer was made (a late Done or Err neither blocks nor panics).
func TestLazyDeadline(t *testing.T) {
	l := &lazyDeadline{parent: context.Background(), deadline: time.Now().Add(time.Millisecond)}
	if d, ok := l.Deadline(); !ok || d != l.deadline {
		t.Fatalf("Deadline() = %v, %v", d, ok)
	}
	<-l.Done()
	if !errors.Is(l.Err(), context.DeadlineExceeded) {
		t.Fatalf("after the deadline: %v", l.Err())
	}
	l.stop()

	unused := &lazyDeadline{parent: context.Background(), deadline: time.Now().Add(time.Hour)}
	unused.stop()
	if unused.cancel != nil {
		t.Fatal("a context never waited on made a timer")
	}
	select {
	case <-unused.Done():
	default:
		t.Fatal("a stopped context is not done")
	}
	if !errors.Is(unused.Err(), context.Canceled) {
		t.Fatalf("a stopped context's Err: %v", unused.Err())
	}
}

// applyingLeader is a submitter standing in for the leader: it sends each
// proposal through the RPC's encoding and applies it to a real state
// machine as one log entry, then reports the outcomes in lost as unknown
// (the entry was committed, the reply never came back).
type applyingLeader struct {
	fsm   *fsm.FSM
	index uint64
	lost  int // replies still to lose
	sent  int
}

func (l *applyingLeader) enqueue(_ context.Context, cmds ...fsm.Command) (*proposal, error) {
	props, _, err := decodeProposeRequest(appendProposeRequest(nil, rpcVersion, [][]fsm.Command{cmds}, nil))
	if err != nil {
		return nil, err
	}
	return &proposal{cmds: props[0], done: make(chan outcome, 1)}, nil
}

func (l *applyingLeader) await(pr *proposal) ([]fsm.Result, error) {
	l.index++
	l.sent++
	data := fsm.Entry{Now: 1_000_000 + int64(l.index), Commands: pr.cmds}.Encode()
	res := l.fsm.Apply(&raft.Log{Index: l.index, Data: data}).([]fsm.Result)
	if l.lost > 0 {
		l.lost--
		return nil, fmt.Errorf("%w: reply lost", ErrOutcomeUnknown)
	}
	return res, nil
}

// TestRouterResendAppliedOnce: a forwarded proposal that the leader
// committed but whose reply was lost is resent, by enqueue/await (a
// client's pipeline) and by decide (EXEC), and the state machine answers
// the resend from the session numbers: the same permits, and nothing taken
// or given back twice.
func TestRouterResendAppliedOnce(t *testing.T) {
	follower := viewState{leader: "10.0.0.1:6380"}
	for _, viaDecide := range []bool{false, true} {
		t.Run(fmt.Sprintf("decide=%v", viaDecide), func(t *testing.T) {
			leader := &applyingLeader{fsm: fsm.New(fsm.Config{})}
			var log []string
			r := fakeRouter([]viewState{follower}, &log, &fakeSubmitter{}, &fakeSubmitter{})
			r.remote = func(string) submitter { return leader }
			_, r.window = resendWindow(time.Second, 5*time.Second)
			// A first grant on k, so that the CANCEL below has one to give
			// back: a CANCEL applied twice would give back this one too.
			first, err := r.decide(context.Background(), false, fsm.Acquire{Key: "k", Interval: 1000, Max: 5, Slop: 10})
			if err != nil || !first[0].Permit.Granted {
				t.Fatalf("first grant: %+v %v", first, err)
			}
			cmds := []fsm.Command{
				fsm.Acquire{Key: "k", Interval: 1000, Max: 5, Slop: 10, Cost: 2},
				fsm.Cancel{Key: "k", ValidAt: first[0].Permit.ValidAt + 1000},
				fsm.Acquire{Key: "j", Interval: 1000, Max: 0, Slop: 10},
			}
			leader.lost = 2
			var res []fsm.Result
			wantSent := 4 // the first, then the transaction sent three times
			if viaDecide {
				res, err = r.decide(context.Background(), false, cmds...)
			} else {
				// A pipeline's commands are a proposal each; the first
				// one's replies are lost.
				wantSent = 6
				for _, cmd := range cmds {
					var tk *ticket
					var one []fsm.Result
					if tk, err = r.enqueue(context.Background(), false, false, nil, cmd); err == nil {
						one, err = r.await(tk)
					}
					if err != nil {
						break
					}
					res = append(res, one...)
				}
			}
			if err != nil {
				t.Fatalf("resent proposal: %v", err)
			}
			if leader.sent != wantSent {
				t.Fatalf("the leader saw %d proposals, want %d", leader.sent, wantSent)
			}
			if !res[0].Permit.Granted || res[0].Permit.ValidAt != first[0].Permit.ValidAt+1000 || res[1].Count != 1 || !res[2].Permit.Granted {
				t.Fatalf("results %+v", res)
			}
			// Applied once: k's grant of two slots was taken and given
			// back once (k is back to its first grant), j granted once.
			st := leader.fsm.Stats()
			if st.Grants+st.Reservations != 3 || st.Denials != 0 {
				t.Fatalf("stats %+v, want 3 grants, no denials", st)
			}
			if got := leader.fsm.Keys(0)["k"].Last; got != first[0].Permit.ValidAt {
				t.Fatalf("k's last slot %d, want %d: the cancel was not applied exactly once", got, first[0].Permit.ValidAt)
			}
			if leader.fsm.Sequences() != 4 || leader.fsm.Tokens() != 0 {
				t.Fatalf("%d numbers, %d tokens remembered; want 4, 0", leader.fsm.Sequences(), leader.fsm.Tokens())
			}
		})
	}
}

// TestForwardSessionNumber: a proposal's ACQUIREs and CANCELs without an
// identity are numbered consecutively in the session, after the last
// proposal's; a client's token and a number given before are kept; other
// commands are left alone.
func TestForwardSessionNumber(t *testing.T) {
	s := newForwardSession()
	if s.id == 0 {
		t.Fatal("session 0")
	}
	a := fsm.Acquire{Key: "k", Interval: 1, Max: 1}
	first := s.number([]fsm.Command{a, fsm.Reset{Keys: []string{"k"}}, fsm.Cancel{Key: "k", ValidAt: 3}}, 9_000)
	second := s.number([]fsm.Command{
		fsm.Acquire{Key: "k", Interval: 1, Max: 1, Token: "mine", TokenWindow: 0},
		first[0], // already numbered: a resend
		a,
	}, 9_000)
	want := [][]fsm.Command{
		{fsm.Acquire{Key: "k", Interval: 1, Max: 1, Session: s.id, Seq: 1, TokenWindow: 9_000}, fsm.Reset{Keys: []string{"k"}},
			fsm.Cancel{Key: "k", ValidAt: 3, Session: s.id, Seq: 2, TokenWindow: 9_000}},
		{fsm.Acquire{Key: "k", Interval: 1, Max: 1, Token: "mine"}, fsm.Acquire{Key: "k", Interval: 1, Max: 1, Session: s.id, Seq: 1, TokenWindow: 9_000},
			fsm.Acquire{Key: "k", Interval: 1, Max: 1, Session: s.id, Seq: 3, TokenWindow: 9_000}},
	}
	if !reflect.DeepEqual([][]fsm.Command{first, second}, want) {
		t.Fatalf("numbered\n %+v\n %+v\nwant\n %+v\n %+v", first, second, want[0], want[1])
	}
	if other := newForwardSession(); other.id == s.id {
		t.Fatalf("two sessions drew the same id %x", s.id)
	}
}
