package faults_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

func describeOp(o opRecord) string {
	out := "unknown: " + o.out.err
	if o.replied {
		out = fmt.Sprintf("granted=%v wait=%d valid_at=%d expires=%d pending=%d",
			o.out.granted, o.out.wait, o.out.validAt, o.out.expires, o.out.pending)
	}
	return fmt.Sprintf("client %d via %s, %s, token %s, %d attempts, called %.3fs returned %.3fs: %s",
		o.client, o.node, o.key.name, o.token, o.attempts, o.call.Seconds(), o.ret.Seconds(), out)
}

// checkSpacing: for every key, acknowledged grants are at least the
// interval apart in cluster time, so no two share a slot.
func checkSpacing(t *testing.T, ops []opRecord) {
	byKey := map[string][]opRecord{}
	for _, o := range ops {
		if o.replied && o.out.granted {
			byKey[o.key.name] = append(byKey[o.key.name], o)
		}
	}
	bad := 0
	for k, g := range byKey {
		sort.Slice(g, func(i, j int) bool { return g[i].out.validAt < g[j].out.validAt })
		for i := 1; i < len(g); i++ {
			gap := g[i].out.validAt - g[i-1].out.validAt
			if gap >= g[i].key.iv {
				continue
			}
			what := "closer than the interval"
			if gap == 0 {
				what = "share a slot"
			}
			if bad++; bad <= 10 {
				t.Errorf("spacing: key %s: two grants %s (%d ms apart, interval %d):\n  %s\n  %s",
					k, what, gap, g[i].key.iv, describeOp(g[i-1]), describeOp(g[i]))
			}
		}
	}
	if bad > 10 {
		t.Errorf("spacing: %d violations in all", bad)
	}
}

// checkTokens: no idempotency token was granted twice. Every call but the
// tokenless ones carried its own token; a call whose outcome was unknown
// was sent again with it,
// and one granted call in dupEvery was deliberately sent again: each such
// resend must be answered with the first grant (same slot, same reply),
// never with a second slot. (A second slot taken by a resend of an
// unknown outcome would also show in the spacing and linearizability
// checks, as a grant no call acknowledged.)
func checkTokens(t *testing.T, ops []opRecord) {
	tokens := map[string]bool{}
	retried, retriedAnswered, dups, dupsAnswered, bad, tokenless := 0, 0, 0, 0, 0, 0
	for _, o := range ops {
		if o.token == "" {
			tokenless++
			continue
		}
		if tokens[o.token] {
			t.Errorf("tokens: token %s used by two calls", o.token)
		}
		tokens[o.token] = true
		if o.attempts > 1 {
			retried++
			if o.replied {
				retriedAnswered++
			}
		}
		if !o.dupSent {
			continue
		}
		dups++
		if o.dup.unknown {
			continue
		}
		dupsAnswered++
		if o.dup != o.out {
			if bad++; bad <= 10 {
				t.Errorf("tokens: token %s granted twice: first reply granted=%v valid_at=%d wait=%d pending=%d, its resend granted=%v valid_at=%d wait=%d pending=%d\n  %s",
					o.token, o.out.granted, o.out.validAt, o.out.wait, o.out.pending, o.dup.granted, o.dup.validAt, o.dup.wait, o.dup.pending, describeOp(o))
			}
		}
	}
	t.Logf("tokens: %d calls, %d of them each with its own token; %d sent again after an unknown outcome (%d then answered); %d granted calls resent on purpose, %d answered, %d of them with another reply than the first",
		len(ops), len(ops)-tokenless, retried, retriedAnswered, dups, dupsAnswered, bad)
}

// checkMinority: a node cut off from a majority never acknowledges a grant
// of a call invoked after it was cut off. A call counts for an episode when
// it was invoked after the fault was in place (e.start: for a SIGSTOP, once
// every thread had stopped, so nothing the node did before the stop took
// hold is in scope) and answered before healing began; o.node is the node
// whose reply was recorded (the last attempt's).
func checkMinority(t *testing.T, ops []opRecord, eps []*episode) {
	checked, cutOff := 0, 0
	for _, e := range eps {
		for _, o := range ops {
			if o.call < e.start || o.ret > e.healStart {
				continue
			}
			if !e.canGrant(o.node) {
				cutOff++
			}
			if !o.replied || !o.out.granted {
				continue
			}
			checked++
			if !e.canGrant(o.node) {
				t.Errorf("minority grant: %s could not reach a majority during %s, yet granted:\n  %s", o.node, e, describeOp(o))
			}
		}
	}
	t.Logf("minority check: %d grants made during faults, each through a node that could reach a majority; %d calls through cut-off nodes, none granted",
		checked, cutOff)
}

// porcupineHistory turns the hot keys' calls into porcupine operations.
// A call without a reply may have taken effect at any time after it was
// made: it gets a return time after every other operation. A call that was
// never sent (its connection was refused) is left out.
//
// A call sent more than once (by the client after an unknown outcome, or
// by a follower resending a forwarded proposal) is one operation: every
// attempt carries the call's token, so it is applied at most once, and a
// later attempt is answered with the first one's reply, decided between
// the call and its return.
func porcupineHistory(ops []opRecord) []porcupine.Operation {
	var end int64
	for _, o := range ops {
		end = max(end, int64(o.ret))
	}
	end++
	var h []porcupine.Operation
	for i, o := range ops {
		if !o.key.hot || o.notSent {
			continue
		}
		in := acqInput{key: o.key.name, iv: o.key.iv, max: o.key.max, slop: o.key.slop, node: o.node, client: o.client, opIndx: i}
		ret := int64(o.ret)
		if !o.replied {
			ret = end
		}
		h = append(h, porcupine.Operation{ClientId: o.client, Input: in, Call: int64(o.call), Output: o.out, Return: ret})
	}
	return h
}

// checkLinearizable checks each hot key's history with porcupine and, when
// one is not linearizable, writes porcupine's visualisation into dir.
func checkLinearizable(t *testing.T, ops []opRecord, dir func() string) {
	h := porcupineHistory(ops)
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(acquireModel, h, time.Minute)
	t.Logf("linearizability: %d operations on %d hot keys, %s in %v",
		len(h), len(hotKeys), res, time.Since(start).Round(time.Millisecond))
	switch res {
	case porcupine.Illegal:
		path := filepath.Join(dir(), "linearizability.html")
		if err := porcupine.VisualizePath(acquireModel, info, path); err != nil {
			t.Errorf("writing the visualisation: %v", err)
		}
		t.Errorf("linearizability: a hot key's history is not linearizable; porcupine's visualisation: %s", path)
	case porcupine.Unknown:
		// Inconclusive, not a violation (porcupine's own reading of a
		// timeout). Known to happen on about 1 seed in 6: see cluster.md.
		t.Logf("linearizability: INCONCLUSIVE: porcupine did not finish within a minute (%d operations)", len(h))
	}
}

// checkConvergence heals nothing itself: it writes a marker through the
// cluster (so that every node applies a new entry, also one restored from a
// snapshot that has applied nothing since), waits until every node reports
// the same applied index in RAFT.DIGEST, and compares their digests.
func checkConvergence(t *testing.T, c *cluster) {
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		for _, id := range c.ids {
			if _, err := c.do(id, 10*time.Second, "THROTTLE.ACQUIRE", fmt.Sprintf("marker-%d", attempt), 1, 1); err == nil {
				break
			}
		}
		for poll := time.Now().Add(3 * time.Second); time.Now().Before(poll); time.Sleep(50 * time.Millisecond) {
			idx, sums, err := c.digests()
			if err != nil {
				last = err.Error()
				continue
			}
			same := true
			for _, id := range c.ids {
				same = same && idx[id] == idx[c.ids[0]] && idx[id] != 0
			}
			last = fmt.Sprintf("applied indexes %v", idx)
			if !same {
				continue
			}
			for _, id := range c.ids {
				if sums[id] != sums[c.ids[0]] {
					t.Errorf("convergence: at applied index %d the digests differ: %v", idx[id], sums)
					return
				}
			}
			t.Logf("convergence: every node at applied index %d with digest %s", idx[c.ids[0]], sums[c.ids[0]][:16])
			return
		}
	}
	t.Errorf("convergence: the nodes did not reach the same applied index within 60s: %s", last)
}

// reportAvailability logs, per fault, how long after it began and after it
// was healed the next acknowledged grant came (to a call made after that
// moment), and percentiles over all faults. It asserts nothing: how fast a
// cluster recovers on a busy machine is not a promise.
func reportAvailability(t *testing.T, ops []opRecord, eps []*episode) {
	sorted := append([]opRecord(nil), ops...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].call < sorted[j].call })
	next := func(at time.Duration) (time.Duration, bool) {
		best, ok := time.Duration(0), false
		for _, o := range sorted {
			if o.call >= at && o.replied && o.out.granted && (!ok || o.ret-at < best) {
				best, ok = o.ret-at, true
			}
		}
		return best, ok
	}
	var afterFault, afterHeal []time.Duration
	var b strings.Builder
	for _, e := range eps {
		f, fok := next(e.start)
		h, hok := next(e.healed)
		if fok {
			afterFault = append(afterFault, f)
		}
		if hok {
			afterHeal = append(afterHeal, h)
		}
		fmt.Fprintf(&b, "\n  %s: next grant %v after the fault, %v after healing", e, f.Round(time.Millisecond), h.Round(time.Millisecond))
	}
	t.Logf("availability:%s\n  after a fault began: %s\n  after healing:       %s", b.String(), percentiles(afterFault), percentiles(afterHeal))
}

func percentiles(d []time.Duration) string {
	if len(d) == 0 {
		return "no grants"
	}
	slices.Sort(d)
	p := func(q float64) time.Duration { return d[int(q*float64(len(d)-1))].Round(time.Millisecond) }
	return fmt.Sprintf("p50 %v, p90 %v, max %v (%d faults)", p(0.5), p(0.9), d[len(d)-1].Round(time.Millisecond), len(d))
}

// writeArtifacts writes the history and every node's full log into dir.
func writeArtifacts(t *testing.T, c *cluster, ops []opRecord, dir string) {
	f, err := os.Create(filepath.Join(dir, "history.txt"))
	if err != nil {
		t.Logf("artifacts: %v", err)
		return
	}
	w := bufio.NewWriter(f)
	for _, o := range ops {
		fmt.Fprintln(w, describeOp(o))
	}
	w.Flush()
	f.Close()
	for id, procs := range c.history {
		for i, p := range procs {
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.log", id, i)), []byte(strings.Join(p.Logs(), "\n")+"\n"), 0o644)
		}
	}
}

// reportFastDenials logs how many denials the nodes answered without the
// log (INFO throttle_denials_fast; counted since each node last started,
// so a lower bound), so that a run shows the checks above covered them.
func reportFastDenials(t *testing.T, c *cluster) {
	var total int64
	for _, id := range c.ids {
		v, err := c.do(id, 2*time.Second, "INFO", "stats")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(fmt.Sprint(v), "\r\n") {
			if s, ok := strings.CutPrefix(line, "throttle_denials_fast:"); ok {
				n, _ := strconv.ParseInt(s, 10, 64)
				total += n
			}
		}
	}
	t.Logf("denials answered without the log: at least %d", total)
}
