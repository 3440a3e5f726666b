package server

import (
	"sync/atomic"
	"time"
)

// Why a batch waits for returning clients, on the leader's proposer and on
// a follower's forwarder alike: at one entry (or forwarding request) in
// flight, clients that send again as soon as they are answered (nearly
// every client of a rate limiter: a worker asks, then acts) settle into
// two halves, one in the batch being committed and one filling the next,
// so every entry carries half of them. An entry's cost to the cluster
// (each node's log write and fsync, the AppendEntries round trips, Raft's
// bookkeeping, each follower's apply) is mostly per entry, so on CPU that
// is saturated, half-size entries spend that cost twice: measured (docs/performance.md,
// "Larger entries at -P 1" and "Through a follower"), waiting made a
// quarter fewer entries and took 5-20% off each node's CPU per request.
// The wait is bounded by the last answer's time (and waitMaxLinger), ends
// as soon as nine tenths of the connections the last answer served have
// sent again, and happens only while most proposals come from such
// connections (loop): a lone client, clients that each send once in a
// while, and proposals without an origin never make a batch wait.
const (
	waitLoopShare  = 0.5                  // loop from which a batch waits
	waitMaxLinger  = 5 * time.Millisecond // cap on one wait
	waitLoopWeight = 1.0 / 8              // weight of one batch in loop
)

// returnWait is the state of that wait, embedded in the proposer and the
// forwarder; each says which of an origin's marks it reads (seen).
type returnWait struct {
	// loop is a moving average of the share of a batch's proposals whose
	// connection the last answer or the one before served: near 1 when
	// clients send again as soon as they are answered (the batching
	// goroutine's own).
	loop float64
	// waitBound, if set, replaces the bound on one wait (tests).
	waitBound time.Duration
	// The newest answer: its sequence number, when it came (Unix ns), how
	// long it took (ns), and how many of the connections it served must
	// send again to end a wait (want). returned counts those that have
	// sent since; the one that brings it to want signals returns, so that
	// a waiting batch wakes once, not once per arrival.
	answeredSeq, lastDone, lastTook, want, returned atomic.Int64
	returns                                         chan struct{} // capacity 1
}

// answeredBy records the seq'th answer, done at done after took, which
// served connections distinct connections.
func (w *returnWait) answeredBy(seq uint64, connections int64, took time.Duration, done time.Time) {
	w.returned.Store(0)
	w.want.Store((connections*9 + 9) / 10) // nine tenths, rounded up
	w.lastTook.Store(int64(took))
	w.lastDone.Store(done.UnixNano())
	w.answeredSeq.Store(int64(seq))
}

// returnedOne counts a connection the newest answer served sending again,
// and wakes a waiting batch once enough have.
func (w *returnWait) returnedOne() {
	if w.returned.Add(1) == w.want.Load() {
		w.signalReturns()
	}
}

// signalReturns wakes a waiting batch, if any.
func (w *returnWait) signalReturns() {
	select {
	case w.returns <- struct{}{}:
	default:
	}
}

// wait lets batch, of n commands (at most max), wait a bounded time
// for the connections the newest answer served to send again; seen gives
// the sequence number of the answer that last served an origin. It
// reports whether stop was closed meanwhile.
func (w *returnWait) wait(batch []*proposal, n, max int, seen func(*origin) uint64, stop <-chan struct{}) bool {
	last := uint64(w.answeredSeq.Load())
	var from, recent int64
	for _, pr := range batch {
		if pr.from == nil {
			continue
		}
		from++
		if a := seen(pr.from); a != 0 && a+1 >= last {
			recent++ // served by the last answer or the one before
		}
	}
	if from > 0 {
		w.loop += waitLoopWeight * (float64(recent)/float64(from) - w.loop)
	}
	select {
	case <-w.returns: // a signal for an earlier wait
	default:
	}
	if w.loop < waitLoopShare || w.returned.Load() >= w.want.Load() || n >= max {
		return false
	}
	wait := min(time.Duration(w.lastTook.Load()), waitMaxLinger)
	if w.waitBound != 0 {
		wait = w.waitBound
	}
	d := time.Until(time.Unix(0, w.lastDone.Load()).Add(wait))
	if d <= 0 {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.returns:
	case <-t.C:
	case <-stop:
		return true
	}
	return false
}
