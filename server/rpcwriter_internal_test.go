package server

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/throttledb/throttledb/fsm"
)

// TestRPCWriterSendsReadyReplyBeforeWaiting: a forwarding request whose
// reply is ready is written before the writer waits for the next
// request's outcome, not held in its buffer until that outcome comes.
func TestRPCWriterSendsReadyReplyBeforeWaiting(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	s := &Server{prop: newProposer(nil, 16, time.Second, func() int64 { return 0 })}
	w := &rpcWriter{s: s, c: &clientConn{nc: a}, pending: make(chan *rpcPending, maxRPCInFlight), done: make(chan struct{})}
	first := []byte("$1\r\nx\r\n")
	pr := newProposal([]fsm.Command{fsm.Acquire{Key: "k", Interval: 1000, Max: 1}})
	w.wg.Add(2)
	w.pending <- &rpcPending{reply: first}                                         // answered
	w.pending <- &rpcPending{queued: []*proposal{pr}, outs: make([]rpcOutcome, 1)} // waiting
	go w.run()

	// The second request is answered only once the first reply is read:
	// a writer that holds the first until then never delivers it.
	b.SetReadDeadline(time.Now().Add(30 * time.Second))
	got := make([]byte, len(first))
	if _, err := io.ReadFull(b, got); err != nil {
		t.Fatalf("the ready reply was not written while the next request waited: %v", err)
	}
	if string(got) != string(first) {
		t.Fatalf("first reply %q, want %q", got, first)
	}
	pr.done <- outcome{err: ErrOutcomeUnknown}
	second := make([]byte, 1)
	if _, err := io.ReadFull(b, second); err != nil {
		t.Fatalf("the second reply: %v", err)
	}
	go io.Copy(io.Discard, b) // the rest of the second reply
	close(w.pending)
	<-w.done
}
