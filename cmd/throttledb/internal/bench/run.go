package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/cmd/throttledb/internal/embedded"
	"github.com/throttledb/throttledb/internal/latency"
)

// errorPause is how long a client waits after a round trip with an error,
// so that a target that is down is not hammered in a tight loop.
const errorPause = 10 * time.Millisecond

// Run runs the load described by cfg, writes a report to out and returns
// the Result. It returns when Duration has passed and every round trip in
// flight has been answered, or when ctx ends (then with ctx's error, after
// the report of what was done). When Verify finds a violation, it returns
// the Result and an error wrapping ErrSpacing.
func Run(ctx context.Context, cfg Config, out io.Writer) (Result, error) {
	start := time.Now()
	cfg = cfg.withDefaults(start)
	if err := cfg.validate(); err != nil {
		return Result{}, err
	}
	addrs := cfg.Addrs
	where := strings.Join(addrs, ",")
	if len(addrs) == 0 {
		node, err := embedded.Start(ctx, "bench")
		if err != nil {
			return Result{}, err
		}
		defer node.Close()
		addrs = []string{node.Server.Addr()}
		where = node.Server.Addr() + " (an embedded single-node throttledb server, data in a temporary directory)"
	}
	fmt.Fprintf(out, "bench: target %s at %s\n", cfg.Target, where)

	clients, err := dial(ctx, cfg, addrs)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	var sha string
	if cfg.Target == TargetRedisLua {
		if sha, err = loadScript(ctx, clients, addrs); err != nil {
			return Result{}, err
		}
	}
	verify := ""
	if cfg.Verify {
		verify = ", recording grants to verify spacing"
	}
	fmt.Fprintf(out, "bench: %d clients, pipeline %d, %d keys %s0..%d, interval %d ms, max %d, for %v%s\n",
		cfg.Clients, cfg.Pipeline, cfg.Keys, cfg.KeyPrefix, cfg.Keys-1, cfg.Interval.Milliseconds(), cfg.Max, cfg.Duration, verify)

	acq := newAcquirer(cfg, sha)
	begin := time.Now()
	end := begin.Add(cfg.Duration)
	var prog *progress
	progressDone := make(chan struct{})
	var progressWG sync.WaitGroup
	if cfg.Progress != nil {
		prog = newProgress(cfg.Progress, cfg.ProgressInPlace, begin)
		ticks := cfg.progressTicks
		if ticks == nil {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			ticks = t.C
		}
		progressWG.Go(func() { prog.report(ticks, progressDone) })
	}
	workers := make([]*worker, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		w := &worker{cfg: cfg, acq: acq, c: c, prog: prog}
		workers[i] = w
		wg.Go(func() { w.run(ctx, end) })
	}
	wg.Wait()
	elapsed := time.Since(begin)
	close(progressDone)
	progressWG.Wait()

	res := collect(cfg, addrs, len(cfg.Addrs) == 0, elapsed, workers)
	res.print(out)
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if res.Spacing.Checked && !res.Spacing.Pass {
		return res, fmt.Errorf("%w: %s", ErrSpacing, res.Spacing.First)
	}
	return res, nil
}

// worker is one client's closed loop. Its fields are its own until run
// returns, so nothing is shared while the load runs but prog (safe for
// concurrent use).
type worker struct {
	cfg  Config
	acq  acquirer
	c    *redis.Client
	prog *progress // nil: no progress lines

	ops, grantedNow, reserved, denied, errors, roundTrips int64
	firstErr                                              string
	firstErrAt                                            time.Time
	lat                                                   latency.Histogram
	grants                                                []grant
}

func (w *worker) run(ctx context.Context, end time.Time) {
	n := w.cfg.Pipeline
	keys := make([]int32, n)
	cmds := make([]*redis.Cmd, n)
	for ctx.Err() == nil && time.Now().Before(end) {
		for i := range keys {
			keys[i] = int32(rand.IntN(w.cfg.Keys))
		}
		t0 := time.Now()
		if n == 1 {
			cmds[0] = w.acq.queue(ctx, w.c, w.key(keys[0]))
		} else {
			pipe := w.c.Pipeline()
			for i, k := range keys {
				cmds[i] = w.acq.queue(ctx, pipe, w.key(k))
			}
			// Exec's error is also each failed command's; they are counted
			// one by one below.
			_, _ = pipe.Exec(ctx)
		}
		if ctx.Err() != nil {
			return // interrupted: these commands' outcome is unknown, not an error
		}
		took := time.Since(t0)
		w.lat.Record(took)
		w.roundTrips++
		var failed int64
		for i, cmd := range cmds {
			if !w.count(keys[i], cmd) {
				failed++
			}
		}
		if w.prog != nil {
			w.prog.record(took, int64(n), failed)
		}
		if failed > 0 {
			pause(ctx, errorPause)
		}
	}
}

func (w *worker) key(k int32) string {
	return w.cfg.KeyPrefix + strconv.Itoa(int(k))
}

// count classifies one command's reply and reports whether it was one.
func (w *worker) count(key int32, cmd *redis.Cmd) bool {
	w.ops++
	v, err := cmd.Int64Slice()
	if err == nil && len(v) != 5 {
		err = fmt.Errorf("unexpected reply %v: want 5 integers", v)
	}
	if err != nil {
		w.errors++
		if w.firstErr == "" {
			w.firstErr, w.firstErrAt = err.Error(), time.Now()
		}
		return false
	}
	switch {
	case v[0] != 1:
		w.denied++
		return true
	case v[1] > 0:
		w.reserved++
	default:
		w.grantedNow++
	}
	if w.cfg.Verify {
		w.grants = append(w.grants, grant{key: key, slot: v[2]})
	}
	return true
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
