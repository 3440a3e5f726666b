package bench

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/throttledb/throttledb/internal/latency"
)

// progress writes a line per tick while a run lasts: the throughput, p99
// round-trip latency and errors since the previous tick.
//
// Workers record into the current window; each tick swaps in a fresh one
// and reports the old. A round trip recorded by a worker that loaded the
// old window just before the swap may be missed by that line: the lines
// are a monitor, the final Result is the measurement.
type progress struct {
	out     io.Writer
	inPlace bool // rewrite one line (a terminal) rather than add lines
	start   time.Time
	last    time.Time // the previous tick, or start
	cur     atomic.Pointer[window]
	printed bool
}

// window is what the workers recorded since the last tick.
type window struct {
	lat         latency.Histogram
	ops, errors atomic.Int64
}

func newProgress(out io.Writer, inPlace bool, start time.Time) *progress {
	p := &progress{out: out, inPlace: inPlace, start: start, last: start}
	p.cur.Store(&window{})
	return p
}

// record adds one round trip of ops commands, errs of which failed.
func (p *progress) record(d time.Duration, ops, errs int64) {
	w := p.cur.Load()
	w.lat.Record(d)
	w.ops.Add(ops)
	w.errors.Add(errs)
}

// tick reports the window that ends at now and starts the next.
func (p *progress) tick(now time.Time) {
	w := p.cur.Swap(&window{})
	secs := now.Sub(p.last).Seconds()
	p.last = now
	rate := 0.0
	if secs > 0 {
		rate = float64(w.ops.Load()) / secs
	}
	line := fmt.Sprintf("bench: %3.0fs %9.0f ops/s  p99=%s  errors=%d",
		max(now.Sub(p.start), 0).Seconds(), rate, ms(w.lat.Quantile(0.99)), w.errors.Load())
	if p.inPlace {
		// Carriage return, then erase to the end of the line.
		fmt.Fprintf(p.out, "\r\x1b[K%s", line)
	} else {
		fmt.Fprintln(p.out, line)
	}
	p.printed = true
}

// finish ends an in-place line, so that what follows starts on its own.
func (p *progress) finish() {
	if p.inPlace && p.printed {
		fmt.Fprintln(p.out)
	}
}

// report ticks on every value of ticks until done is closed, then
// finishes.
func (p *progress) report(ticks <-chan time.Time, done <-chan struct{}) {
	defer p.finish()
	for {
		select {
		case now := <-ticks:
			p.tick(now)
		case <-done:
			return
		}
	}
}
