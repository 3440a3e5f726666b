package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
)

// outcome is one ACQUIRE a hammer client sent and what came back.
type outcome struct {
	node       string
	key        string
	sent, recv time.Time
	p          permit
	err        error
}

// hammer runs clients that ACQUIRE a few hot keys as fast as the throttle
// lets them, through the given nodes, and records every outcome. Some
// clients pipeline their commands, some send transactions.
type hammer struct {
	interval, max int64
	cancel        context.CancelFunc
	wg            sync.WaitGroup
	mu            sync.Mutex
	out           []outcome
}

func startHammer(t *testing.T, targets []*testcluster.Proc, clients int, keys []string, interval, max int64) *hammer {
	ctx, cancel := context.WithCancel(context.Background())
	h := &hammer{interval: interval, max: max, cancel: cancel}
	for i := 0; i < clients; i++ {
		p := targets[i%len(targets)]
		cl := p.Client()
		// Spread every key over every node: client i uses node i%n and
		// key (i/n)%k.
		key := keys[(i/len(targets))%len(keys)]
		// One client in four pipelines its commands four at a time, which
		// the leader serves together (and a follower forwards whole), and
		// one in eight sends them two at a time in MULTI/EXEC.
		depth, tx := 1, false
		switch {
		case i%4 == 3:
			depth = 4
		case i%8 == 5:
			depth, tx = 2, true
		}
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			for ctx.Err() == nil {
				sent := time.Now()
				ps, errs := acquirePipeline(context.Background(), cl, key, interval, max, depth, tx)
				recv := time.Now()
				h.mu.Lock()
				for j := range ps {
					h.out = append(h.out, outcome{node: p.ID(), key: key, sent: sent, recv: recv, p: ps[j], err: errs[j]})
				}
				o := h.out[len(h.out)-1]
				h.mu.Unlock()
				// Pace: a denied client waits as told (capped); a failing
				// one backs off briefly instead of spinning.
				var pause time.Duration
				switch {
				case o.err != nil:
					pause = 20 * time.Millisecond
				case !o.p.granted:
					pause = min(time.Duration(o.p.waitMs)*time.Millisecond, 20*time.Millisecond)
				}
				if pause > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(pause):
					}
				}
			}
		}()
	}
	return h
}

// stop stops the clients, waits for their last replies and returns every
// outcome.
func (h *hammer) stop() []outcome {
	h.cancel()
	h.wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]outcome(nil), h.out...)
}

// snapshot returns the outcomes recorded so far.
func (h *hammer) snapshot() []outcome {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]outcome(nil), h.out...)
}

// checkGrants checks that, per key, every granted slot is at least interval
// after the previous one (which also means no slot is claimed twice).
func checkGrants(t *testing.T, outs []outcome, interval int64) (grants int) {
	t.Helper()
	slots := map[string][]int64{}
	for _, o := range outs {
		if o.err == nil && o.p.granted {
			slots[o.key] = append(slots[o.key], o.p.validAt)
			grants++
		}
	}
	bad := 0
	for key, s := range slots {
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		for i := 1; i < len(s); i++ {
			if d := s[i] - s[i-1]; d < interval {
				bad++
				if bad <= 10 {
					t.Errorf("key %s: slots %d and %d are %d ms apart, want >= %d", key, s[i-1], s[i], d, interval)
				}
			}
		}
	}
	return grants
}

// summarize counts outcomes by kind, for the log.
func summarize(outs []outcome) string {
	kinds := map[string]int{}
	for _, o := range outs {
		switch {
		case o.err != nil:
			k := o.err.Error()
			if i := strings.IndexAny(k, ":"); i > 0 && !strings.HasPrefix(k, "dial") {
				k = k[:i]
			}
			if strings.Contains(k, "connection refused") {
				k = "connection refused"
			}
			if len(k) > 60 {
				k = k[:60]
			}
			kinds["error: "+k]++
		case o.p.granted:
			kinds["granted"]++
		default:
			kinds["denied"]++
		}
	}
	var parts []string
	for k, n := range kinds {
		parts = append(parts, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// errorsOf returns the outcomes that failed.
func errorsOf(outs []outcome) []outcome {
	var bad []outcome
	for _, o := range outs {
		if o.err != nil {
			bad = append(bad, o)
		}
	}
	return bad
}

var errNoGrant = errors.New("no grant")

// grantsResume reports whether, within 10 s, h sees a grant through one of
// targets for a request sent more than half a second after t0: the cluster
// serves again after a change made at t0.
func grantsResume(h *hammer, t0 time.Time, targets []*testcluster.Proc) bool {
	nodes := map[string]bool{}
	for _, p := range targets {
		nodes[p.ID()] = true
	}
	return testcluster.Poll(10*time.Second, func() bool {
		_, err := firstGrantAfter(h.snapshot(), t0.Add(500*time.Millisecond), nodes)
		return err == nil
	})
}

// firstGrantAfter returns the earliest reply time of a grant through one of
// nodes for a request sent after t0.
func firstGrantAfter(outs []outcome, t0 time.Time, nodes map[string]bool) (time.Time, error) {
	var first time.Time
	for _, o := range outs {
		if o.err == nil && o.p.granted && nodes[o.node] && o.sent.After(t0) {
			if first.IsZero() || o.recv.Before(first) {
				first = o.recv
			}
		}
	}
	if first.IsZero() {
		return first, errNoGrant
	}
	return first, nil
}
