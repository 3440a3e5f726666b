package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/throttledb/throttledb/fsm"
)

type fakeFuture struct {
	err  error
	resp any
}

func (f fakeFuture) Error() error  { return f.err }
func (f fakeFuture) Index() uint64 { return 1 }
func (f fakeFuture) Response() any { return f.resp }

// fakeRaft applies entries to a real FSM, or fails them with err.
type fakeRaft struct {
	mu      sync.Mutex
	fsm     *fsm.FSM
	err     error
	entries []fsm.Entry
	gate    chan struct{} // if set, Apply blocks until it is closed
	// responses are the futures' responses, which Raft's log cache keeps
	// reachable on a real leader.
	responses []any
}

func (r *fakeRaft) Apply(data []byte, _ time.Duration) raft.ApplyFuture {
	if r.gate != nil {
		<-r.gate
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, _ := fsm.DecodeEntry(data)
	r.entries = append(r.entries, e)
	if r.err != nil {
		return fakeFuture{err: r.err}
	}
	f := fakeFuture{resp: applyAsRaft(r.fsm, data)}
	r.responses = append(r.responses, f.resp)
	return f
}

// applyAsRaft applies data as Raft does on a node (timedFSM), so that the
// response is what the proposer gets from a real future.
func applyAsRaft(f *fsm.FSM, data []byte) any {
	return timedFSM{f, new(raftLatency)}.Apply(&raft.Log{Data: data})
}

// TestProposerReleasesResults checks that the proposer empties each
// future's results once it has answered them: a real leader's log cache
// keeps its recent futures, and with them whatever they still hold.
func TestProposerReleasesResults(t *testing.T) {
	r := &fakeRaft{fsm: fsm.New(fsm.Config{})}
	p := newProposer(r, 8, time.Second, func() int64 { return 1000 })
	go p.run()
	defer p.close()
	for i := range 3 {
		res, err := p.propose(context.Background(), fsm.Acquire{Key: fmt.Sprint("k", i), Interval: 10, Max: 1, Slop: 1})
		if err != nil || !res.Permit.Granted {
			t.Fatalf("proposal %d: %+v, %v", i, res, err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.responses) == 0 {
		t.Fatal("no entry reached Raft")
	}
	for i, resp := range r.responses {
		box, ok := resp.(*appliedResults)
		if !ok || box.res != nil {
			t.Fatalf("response %d still holds its results: %#v", i, resp)
		}
	}
}

func TestProposerOutcomes(t *testing.T) {
	tests := []struct {
		name    string
		raftErr error
		want    error
	}{
		{"committed", nil, nil},
		{"not-leader-is-safe-to-reroute", raft.ErrNotLeader, ErrNotLeader},
		{"transfer-is-safe-to-reroute", raft.ErrLeadershipTransferInProgress, ErrNotLeader},
		{"leadership-lost-is-unknown", raft.ErrLeadershipLost, ErrOutcomeUnknown},
		{"shutdown-is-unknown", raft.ErrRaftShutdown, ErrOutcomeUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &fakeRaft{fsm: fsm.New(fsm.Config{}), err: tt.raftErr}
			p := newProposer(r, 8, time.Second, func() int64 { return 1000 })
			go p.run()
			defer p.close()
			res, err := p.propose(context.Background(), fsm.Acquire{Key: "k", Interval: 10, Max: 1, Slop: 1})
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if tt.want != nil && res.Permit.Granted {
				t.Fatal("a failed proposal reported a grant")
			}
			if tt.want == nil && (!res.Permit.Granted || res.Permit.ValidAt != 1000) {
				t.Fatalf("result %+v", res)
			}
		})
	}
}

// TestProposerResolvesLostLeadership: an entry whose leader lost
// leadership in flight is answered by what became of it (resolve): its
// results if the next leader committed it, route-again if another entry
// took its index, unknown if that cannot be learned; never a grant it did
// not get.
func TestProposerResolvesLostLeadership(t *testing.T) {
	committed := fsm.Result{Permit: fsm.Permit{Granted: true, ValidAt: 1000, ExpiresAt: 1001}}
	tests := []struct {
		name    string
		resolve func(uint64, []byte) ([]fsm.Result, error)
		want    error
	}{
		{"committed by the next leader", func(uint64, []byte) ([]fsm.Result, error) { return []fsm.Result{committed}, nil }, nil},
		{"replaced", func(uint64, []byte) ([]fsm.Result, error) { return nil, ErrNotLeader }, ErrNotLeader},
		{"not learned", func(uint64, []byte) ([]fsm.Result, error) { return nil, ErrOutcomeUnknown }, ErrOutcomeUnknown},
		{"wrong number of results", func(uint64, []byte) ([]fsm.Result, error) { return nil, nil }, ErrOutcomeUnknown},
		{"no resolver", nil, ErrOutcomeUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &fakeRaft{fsm: fsm.New(fsm.Config{}), err: raft.ErrLeadershipLost}
			p := newProposer(r, 8, time.Second, func() int64 { return 1000 })
			var asked []byte
			if tt.resolve != nil {
				p.resolve = func(index uint64, data []byte) ([]fsm.Result, error) {
					asked = data
					return tt.resolve(index, data)
				}
			}
			go p.run()
			defer p.close()
			res, err := p.propose(context.Background(), fsm.Acquire{Key: "k", Interval: 10, Max: 1, Slop: 1})
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if tt.want != nil && res.Permit.Granted {
				t.Fatal("an unresolved proposal reported a grant")
			}
			if tt.want == nil && res != committed {
				t.Fatalf("result %+v, want %+v", res, committed)
			}
			if tt.resolve != nil {
				if e, err := fsm.DecodeEntry(asked); err != nil || len(e.Commands) != 1 {
					t.Fatalf("resolve was not given the entry proposed: %v", err)
				}
			}
		})
	}
}

func TestProposerBatchesConcurrentCommands(t *testing.T) {
	r := &fakeRaft{fsm: fsm.New(fsm.Config{})}
	p := newProposer(r, 64, time.Second, func() int64 { return 5000 })
	defer p.close()
	const n = 50
	var wg sync.WaitGroup
	results := make([]fsm.Result, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			res, err := p.propose(context.Background(), fsm.Acquire{Key: "k", Interval: 10, Max: n, Slop: 1})
			if err != nil {
				t.Error(err)
			}
			results[i] = res
		}(i)
	}
	// Start proposing only once every command is queued (the queue holds
	// maxBatch), so the batching is deterministic.
	for len(p.ch) < n {
		time.Sleep(time.Millisecond)
	}
	go p.run()
	wg.Wait()
	if len(r.entries) != 1 {
		t.Fatalf("%d entries for %d queued commands, want 1 batch", len(r.entries), n)
	}
	seen := map[int64]bool{}
	for _, res := range results {
		if !res.Permit.Granted || seen[res.Permit.ValidAt] {
			t.Fatalf("bad or duplicate slot %+v", res.Permit)
		}
		seen[res.Permit.ValidAt] = true
	}
}

func TestProposerCloseAnswersQueued(t *testing.T) {
	r := &fakeRaft{fsm: fsm.New(fsm.Config{}), gate: make(chan struct{})}
	p := newProposer(r, 1, time.Second, func() int64 { return 1 })
	go p.run()
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() {
			_, err := p.propose(context.Background(), fsm.Acquire{Key: "k", Interval: 1, Max: 5})
			errs <- err
		}()
	}
	for len(p.ch) < 1 {
		time.Sleep(time.Millisecond)
	}
	p.close()
	close(r.gate)
	for i := 0; i < 3; i++ {
		if err := <-errs; err != nil && !errors.Is(err, ErrShuttingDown) {
			t.Fatalf("err %v", err)
		}
	}
}

// TestProposerKeepsATransactionInOneEntry: the commands of one proposal
// (proposeAll, a MULTI/EXEC) always share a log entry, in order, even when
// the batch would otherwise be full, and each gets its own result.
func TestProposerKeepsATransactionInOneEntry(t *testing.T) {
	r := &fakeRaft{fsm: fsm.New(fsm.Config{})}
	const maxBatch = 4
	p := newProposer(r, maxBatch, time.Second, func() int64 { return 5000 })
	defer p.close()
	ctx := context.Background()
	// Queue three singles and a transaction of 6 (over maxBatch) before
	// run starts, so that the batching is deterministic.
	var singles []*proposal
	for i := 0; i < 3; i++ {
		pr, err := p.enqueue(ctx, fsm.Acquire{Key: "single", Interval: 10, Max: 100, Slop: 1})
		if err != nil {
			t.Fatal(err)
		}
		singles = append(singles, pr)
	}
	var tx []fsm.Command
	for i := 0; i < 6; i++ {
		tx = append(tx, fsm.Acquire{Key: "tx", Interval: 10, Max: 100, Slop: 1})
	}
	txPr, err := p.enqueue(ctx, tx...)
	if err != nil {
		t.Fatal(err)
	}
	go p.run()
	for _, pr := range singles {
		if _, err := p.await(pr); err != nil {
			t.Fatal(err)
		}
	}
	res, err := p.await(txPr)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 6 {
		t.Fatalf("%d results for a transaction of 6", len(res))
	}
	for i, rs := range res {
		if want := int64(5000 + 10*i); !rs.Permit.Granted || rs.Permit.ValidAt != want {
			t.Fatalf("command %d of the transaction: %+v, want slot %d", i, rs.Permit, want)
		}
	}
	// Batches: the three singles fill the first entry up to maxBatch (3 <
	// 4, so the transaction joins it: a proposal is never split), and all
	// nine commands share it.
	if len(r.entries) != 1 || len(r.entries[0].Commands) != 9 {
		var sizes []int
		for _, e := range r.entries {
			sizes = append(sizes, len(e.Commands))
		}
		t.Fatalf("entries of sizes %v, want one entry of 9 (3 singles + the whole transaction)", sizes)
	}
}

// heldFuture is a future that answers once released.
type heldFuture struct {
	release chan struct{}
	resp    any
}

func (f heldFuture) Error() error  { <-f.release; return nil }
func (f heldFuture) Index() uint64 { return 1 }
func (f heldFuture) Response() any { <-f.release; return f.resp }

// heldRaft applies entries at once but answers each future only when the
// test releases it, as Raft answers once an entry commits.
type heldRaft struct {
	fsm     *fsm.FSM
	applied chan heldFuture
	sizes   chan int // commands per entry
}

func (r *heldRaft) Apply(data []byte, _ time.Duration) raft.ApplyFuture {
	e, _ := fsm.DecodeEntry(data)
	f := heldFuture{release: make(chan struct{}), resp: applyAsRaft(r.fsm, data)}
	r.sizes <- len(e.Commands)
	r.applied <- f
	return f
}

// TestProposerBoundsEntriesInFlight checks that the proposer hands Raft no
// more entries than its in-flight bound, and that commands arriving while
// the bound is reached all go into the next entry.
func TestProposerBoundsEntriesInFlight(t *testing.T) {
	for _, bound := range []int{1, 2} {
		t.Run(fmt.Sprintf("bound-%d", bound), func(t *testing.T) {
			r := &heldRaft{fsm: fsm.New(fsm.Config{}), applied: make(chan heldFuture, 100), sizes: make(chan int, 100)}
			p := newProposer(r, 64, time.Second, func() int64 { return 1000 })
			p.inflight = make(chan struct{}, bound)
			go p.run()
			defer p.close()
			ctx := context.Background()
			acquire := func(key string) *proposal {
				pr, err := p.enqueue(ctx, fsm.Acquire{Key: key, Interval: 1000, Max: 10})
				if err != nil {
					t.Fatal(err)
				}
				return pr
			}
			// Fill the bound with one-command entries, one at a time.
			var first []*proposal
			var held []heldFuture
			for i := 0; i < bound; i++ {
				first = append(first, acquire(fmt.Sprintf("a%d", i)))
				held = append(held, <-r.applied)
				if n := <-r.sizes; n != 1 {
					t.Fatalf("entry %d holds %d commands, want 1", i, n)
				}
			}
			// Ten more while the bound is reached: none may reach Raft.
			var next []*proposal
			for i := 0; i < 10; i++ {
				next = append(next, acquire(fmt.Sprintf("b%d", i)))
			}
			select {
			case <-r.applied:
				t.Fatalf("an entry beyond the bound of %d reached Raft", bound)
			case <-time.After(100 * time.Millisecond):
			}
			// One commits: the ten go into one entry.
			close(held[0].release)
			if _, err := p.await(first[0]); err != nil {
				t.Fatal(err)
			}
			f := <-r.applied
			if n := <-r.sizes; n != 10 {
				t.Fatalf("the next entry holds %d commands, want the 10 queued meanwhile", n)
			}
			close(f.release)
			for _, h := range held[1:] {
				close(h.release)
			}
			for _, pr := range append(first[1:], next...) {
				if res, err := p.await(pr); err != nil || len(res) != 1 || !res[0].Permit.Granted {
					t.Fatalf("outcome %+v %v", res, err)
				}
			}
		})
	}
}

// TestProposerBatchWait checks when the leader's batch waits for the
// clients the previous entry answered (proposer.waitReturns): two
// clients, one in the entry in flight and one queued meanwhile, as
// clients that send again as soon as answered settle at one entry in
// flight. The wait's bound is an hour unless said, so an entry that
// reaches Raft before the answered client sends again did not wait.
func TestProposerBatchWait(t *testing.T) {
	tests := []struct {
		name      string
		batchWait bool
		origins   bool // the proposals come from client connections
		loop      float64
		bound     time.Duration // of one wait
		want      int           // commands in the second entry
	}{
		{"waits-for-the-answered-client", true, true, 1, time.Hour, 2},
		{"off", false, true, 1, time.Hour, 1},
		{"proposals-without-origin-never-wait", true, false, 1, time.Hour, 1},
		{"clients-that-do-not-send-again-at-once-never-wait", true, true, 0, time.Hour, 1},
		{"the-wait-is-bounded", true, true, 1, time.Millisecond, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &heldRaft{fsm: fsm.New(fsm.Config{}), applied: make(chan heldFuture, 100), sizes: make(chan int, 100)}
			p := newProposer(r, 64, time.Second, func() int64 { return 1000 })
			p.inflight = make(chan struct{}, 1)
			p.batchWait, p.loop, p.waitBound = tt.batchWait, tt.loop, tt.bound
			go p.run()
			defer p.close()
			ctxA, ctxB := context.Background(), context.Background()
			if tt.origins {
				ctxA, ctxB = withOrigin(ctxA), withOrigin(ctxB)
			}
			acquire := func(ctx context.Context, key string) *proposal {
				pr, err := p.enqueue(ctx, fsm.Acquire{Key: key, Interval: 1000, Max: 10})
				if err != nil {
					t.Fatal(err)
				}
				return pr
			}
			entry := func() (heldFuture, int) {
				select {
				case f := <-r.applied:
					return f, <-r.sizes
				case <-time.After(10 * time.Second):
					t.Fatal("no entry reached Raft")
				}
				panic("unreachable")
			}
			a := acquire(ctxA, "a")
			f1, n := entry()
			if n != 1 {
				t.Fatalf("first entry holds %d commands, want 1", n)
			}
			b := acquire(ctxB, "b") // queued while a's entry is in flight
			close(f1.release)
			if _, err := p.await(a); err != nil {
				t.Fatal(err)
			}
			var a2 *proposal
			if tt.want == 2 {
				// Nothing may reach Raft until a's client sends again.
				select {
				case <-r.applied:
					t.Fatal("the next entry reached Raft before the answered client sent again")
				case <-time.After(50 * time.Millisecond):
				}
				a2 = acquire(ctxA, "a")
			}
			f2, n := entry()
			if n != tt.want {
				t.Fatalf("second entry holds %d commands, want %d", n, tt.want)
			}
			close(f2.release)
			if a2 == nil {
				a2 = acquire(ctxA, "a")
				f3, _ := entry()
				close(f3.release)
			}
			for _, pr := range []*proposal{b, a2} {
				if res, err := p.await(pr); err != nil || len(res) != 1 || !res[0].Permit.Granted {
					t.Fatalf("outcome %+v %v", res, err)
				}
			}
		})
	}
}

// TestProposerBatchWaitSingleClient checks that a lone client that sends
// again as soon as answered never waits: each of its commands reaches
// Raft in an entry of its own, although the wait's bound is an hour.
func TestProposerBatchWaitSingleClient(t *testing.T) {
	r := &heldRaft{fsm: fsm.New(fsm.Config{}), applied: make(chan heldFuture, 100), sizes: make(chan int, 100)}
	p := newProposer(r, 64, time.Second, func() int64 { return 1000 })
	p.inflight = make(chan struct{}, 1)
	p.batchWait, p.loop, p.waitBound = true, 1, time.Hour
	go p.run()
	defer p.close()
	ctx := withOrigin(context.Background())
	for i := 0; i < 5; i++ {
		pr, err := p.enqueue(ctx, fsm.Acquire{Key: fmt.Sprint("k", i), Interval: 1000, Max: 10})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case f := <-r.applied:
			if n := <-r.sizes; n != 1 {
				t.Fatalf("entry %d holds %d commands, want 1", i, n)
			}
			close(f.release)
		case <-time.After(10 * time.Second):
			t.Fatalf("command %d did not reach Raft: the lone client waited for itself", i)
		}
		if res, err := p.await(pr); err != nil || !res[0].Permit.Granted {
			t.Fatalf("outcome %+v %v", res, err)
		}
	}
}

// TestProposerTakesARequestWhole: the proposals of a forwarding request,
// queued one by one while the proposer is idle, share one log entry (up to
// maxBatch commands), however the proposer's goroutine interleaves with
// the queueing.
func TestProposerTakesARequestWhole(t *testing.T) {
	tests := []struct {
		name      string
		maxBatch  int
		proposals int
		want      []int // commands of each entry
	}{
		{name: "one entry", maxBatch: 8, proposals: 5, want: []int{5}},
		{name: "full batch", maxBatch: 4, proposals: 4, want: []int{4}},
		{name: "split at maxBatch", maxBatch: 4, proposals: 6, want: []int{4, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &fakeRaft{fsm: fsm.New(fsm.Config{})}
			p := newProposer(r, tc.maxBatch, time.Second, func() int64 { return 5000 })
			go p.run()
			defer p.close()
			ctx := context.Background()
			p.requests.begin()
			var prs []*proposal
			for i := 0; i < tc.proposals; i++ {
				pr, err := p.enqueue(ctx, fsm.Acquire{Key: fmt.Sprintf("k%d", i), Interval: 10, Max: 1})
				if err != nil {
					t.Fatal(err)
				}
				prs = append(prs, pr)
				// The proposer has taken it before the next is queued:
				// without the gate it would propose what it has found.
				for deadline := time.Now().Add(30 * time.Second); len(p.ch) != 0; time.Sleep(100 * time.Microsecond) {
					if time.Now().After(deadline) {
						t.Fatal("the proposer did not take the proposal")
					}
				}
			}
			p.requests.end()
			for _, pr := range prs {
				if _, err := p.await(pr); err != nil {
					t.Fatal(err)
				}
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			var got []int
			for _, e := range r.entries {
				got = append(got, len(e.Commands))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("entries of %v commands, want %v", got, tc.want)
			}
		})
	}
}
