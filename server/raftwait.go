package server

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Why raftNode shadows Raft's future-returning calls: hashicorp/raft
// (v1.7.3) can leave a future unanswered for ever when it shuts down.
// Its state-machine goroutine returns on shutdown without draining the
// buffered channel of committed batches, and its leader loop leaves queued
// VerifyLeader and LeadershipTransfer requests in theirs
// (hashicorp/raft#498). A caller blocked in such a future's Error() would
// never return, and Server.Close, which waits for its background
// goroutines, would hang with it. Every future this package waits on
// comes from these methods, so every wait ends once Raft has shut down:
// with the future's answer if it had one, else with raft.ErrRaftShutdown,
// which callers already treat as an unknown outcome, never as success.

// Apply is raft.Raft.Apply, bounded by shutdown (see above).
func (n *raftNode) Apply(cmd []byte, timeout time.Duration) raft.ApplyFuture {
	return boundedApply{n.Raft.Apply(cmd, timeout), n.down}
}

// Barrier is raft.Raft.Barrier, bounded by shutdown.
func (n *raftNode) Barrier(timeout time.Duration) raft.Future {
	return bounded{n.Raft.Barrier(timeout), n.down}
}

// VerifyLeader is raft.Raft.VerifyLeader, bounded by shutdown.
func (n *raftNode) VerifyLeader() raft.Future {
	return bounded{n.Raft.VerifyLeader(), n.down}
}

// AddVoter is raft.Raft.AddVoter, bounded by shutdown.
func (n *raftNode) AddVoter(id raft.ServerID, addr raft.ServerAddress, prevIndex uint64, timeout time.Duration) raft.IndexFuture {
	return boundedIndex{n.Raft.AddVoter(id, addr, prevIndex, timeout), n.down}
}

// RemoveServer is raft.Raft.RemoveServer, bounded by shutdown.
func (n *raftNode) RemoveServer(id raft.ServerID, prevIndex uint64, timeout time.Duration) raft.IndexFuture {
	return boundedIndex{n.Raft.RemoveServer(id, prevIndex, timeout), n.down}
}

// LeadershipTransfer is raft.Raft.LeadershipTransfer, bounded by shutdown.
func (n *raftNode) LeadershipTransfer() raft.Future {
	return bounded{n.Raft.LeadershipTransfer(), n.down}
}

// LeadershipTransferToServer is raft.Raft.LeadershipTransferToServer,
// bounded by shutdown.
func (n *raftNode) LeadershipTransferToServer(id raft.ServerID, addr raft.ServerAddress) raft.Future {
	return bounded{n.Raft.LeadershipTransferToServer(id, addr), n.down}
}

// Snapshot is raft.Raft.Snapshot, bounded by shutdown.
func (n *raftNode) Snapshot() raft.SnapshotFuture {
	return boundedSnapshot{n.Raft.Snapshot(), n.down}
}

// Restore is raft.Raft.Restore, bounded by shutdown, and never cut short by
// this node's own shutdown: hashicorp/raft (v1.7.3) panics in its leader
// loop when it shuts down while the state machine is loading a user
// snapshot (restoreUserSnapshot takes the shutdown for a failed restore),
// which would crash the process at the end of a stop. So shutdown first
// refuses new restores (ErrShuttingDown: nothing was changed) and waits for
// the ones running to return; a restore is bounded by its image's size and
// by the leader's lease (Restore then commits one entry, which a leader
// that loses its majority answers with an error).
func (n *raftNode) Restore(meta *raft.SnapshotMeta, r io.Reader, timeout time.Duration) error {
	if !n.restores.begin() {
		return ErrShuttingDown
	}
	defer n.restores.end()
	return awaitFuture(callFuture(func() error { return n.Raft.Restore(meta, r, timeout) }), n.down)
}

// callFuture is a blocking call seen as a future, so that awaitFuture can
// bound it.
type callFuture func() error

func (f callFuture) Error() error { return f() }

// restoreGate counts the user restores running, and once closed refuses
// more (see raftNode.Restore).
type restoreGate struct {
	mu      sync.Mutex
	closed  bool
	running sync.WaitGroup
}

// begin counts a restore as running, or reports false once the gate is
// closed; a true begin must be followed by end.
func (g *restoreGate) begin() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.running.Add(1)
	return true
}

func (g *restoreGate) end() { g.running.Done() }

// close refuses restores from now on and waits for the running ones to
// return, or for down to close (Raft shut itself down: nothing is left
// for a restore to finish).
func (g *restoreGate) close(down <-chan struct{}) {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	done := make(chan struct{})
	go func() {
		g.running.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-down:
	}
}

// shutdown waits for running user restores (see Restore), shuts Raft down
// and then marks it down, ending every bounded wait that Raft left
// unanswered. Between starting the shutdown and
// waiting for it, it closes the Raft connections, so that a peer stalled
// mid-RPC cannot hold the wait (see tcpStreamLayer.closeConns); after the
// start, so that nothing Raft does from then on needs them.
func (n *raftNode) shutdown() error {
	n.restores.close(n.down)
	f := n.Raft.Shutdown()
	if n.stream != nil {
		n.stream.closeConns()
	}
	err := f.Error()
	n.markDown()
	return err
}

// markDown ends every bounded wait that Raft left unanswered: at shutdown,
// or once Raft has shut itself down (see Server.watchLeadership).
func (n *raftNode) markDown() { n.downOnce.Do(func() { close(n.down) }) }

type bounded struct {
	raft.Future
	down <-chan struct{}
}

func (f bounded) Error() error { return awaitFuture(f.Future, f.down) }

type boundedIndex struct {
	raft.IndexFuture
	down <-chan struct{}
}

func (f boundedIndex) Error() error { return awaitFuture(f.IndexFuture, f.down) }

type boundedApply struct {
	raft.ApplyFuture
	down <-chan struct{}
}

func (f boundedApply) Error() error { return awaitFuture(f.ApplyFuture, f.down) }

type boundedSnapshot struct {
	raft.SnapshotFuture
	down <-chan struct{}
}

func (f boundedSnapshot) Error() error { return awaitFuture(f.SnapshotFuture, f.down) }

// awaitFuture returns f's error, or raft.ErrRaftShutdown if down is
// closed and f is still unanswered droppedGrace later. Once down is closed
// Raft has stopped, so f either holds its answer already or never will;
// the grace only lets the goroutine reading it run, and errs on the safe
// side: a wait it cuts short reports the shutdown, an unknown outcome. The
// goroutine that waits on a dropped future then waits for ever: one per
// future Raft dropped, only at shutdown.
func awaitFuture(f raft.Future, down <-chan struct{}) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-down:
	}
	t := time.NewTimer(droppedGrace)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("%w: Raft stopped without answering", raft.ErrRaftShutdown)
	}
}

// droppedGrace is how long a wait on a future outlives Raft (see
// awaitFuture): far longer than an answered future takes to read, short
// enough not to matter to a shutdown.
const droppedGrace = time.Second
