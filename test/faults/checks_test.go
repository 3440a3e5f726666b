package faults_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
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
	return fmt.Sprintf("client %d via %s, %s, called %.3fs returned %.3fs: %s",
		o.client, o.node, o.key.name, o.call.Seconds(), o.ret.Seconds(), out)
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

// checkMinority: no grant acknowledged by a node that was cut off from a
// majority for the whole of the call.
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

// forwardFailures returns, per node, the times at which it logged a failed
// forward: the forward may have run on the leader, and it is then sent
// again (the "orphaned slot" documented in cluster.md), so an acquire in
// flight through that node may have been applied twice.
func forwardFailures(c *cluster) map[string][]time.Time {
	re := regexp.MustCompile(`^time=(\S+) .*msg="forward failed"`)
	out := map[string][]time.Time{}
	for id, procs := range c.history {
		for _, p := range procs {
			for _, line := range p.Logs() {
				if m := re.FindStringSubmatch(line); m != nil {
					if ts, err := time.Parse(time.RFC3339Nano, m[1]); err == nil {
						out[id] = append(out[id], ts)
					}
				}
			}
		}
	}
	return out
}

// maxGhosts caps the possible resends counted per acquire.
const maxGhosts = 2

// porcupineHistory turns the hot keys' calls into porcupine operations.
// A call without a reply may have taken effect at any time after it was
// made: it gets a return time after every other operation. A call that was
// never sent (its connection was refused) is left out.
//
// For each forward failure logged by the node a call went through while
// the call was in flight, a possible earlier application of the same
// command is added as a further operation with an unknown outcome (at most
// maxGhosts per call). It returns when the call does: if the first attempt
// was applied at all, it was applied before the resend that produced the
// reply (Raft's log matching: an entry of an earlier term that commits
// after a later leader's entry would have to precede it in the log).
// Bounding it so keeps the search small; an unbounded one per in-flight
// call made porcupine time out on a 12-second run.
func porcupineHistory(ops []opRecord, fails map[string][]time.Time, nClients int) ([]porcupine.Operation, int) {
	var end int64
	for _, o := range ops {
		end = max(end, int64(o.ret))
	}
	end++
	var h []porcupine.Operation
	ghosts := 0
	const slack = 50 * time.Millisecond
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
		n := 0
		for _, ts := range fails[o.node] {
			if !ts.Before(o.callWall.Add(-slack)) && !ts.After(o.retWall.Add(slack)) {
				n++
			}
		}
		for range min(n, maxGhosts) {
			g := in
			g.ghost = true
			h = append(h, porcupine.Operation{ClientId: nClients, Input: g, Call: int64(o.call), Output: acqOutput{unknown: true, err: "possible resend"}, Return: ret})
			ghosts++
		}
	}
	return h, ghosts
}

// checkLinearizable checks each hot key's history with porcupine and, when
// one is not linearizable, writes porcupine's visualisation into dir.
func checkLinearizable(t *testing.T, c *cluster, ops []opRecord, nClients int, dir func() string) {
	h, ghosts := porcupineHistory(ops, forwardFailures(c), nClients)
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(acquireModel, h, time.Minute)
	t.Logf("linearizability: %d operations on %d hot keys (%d possible resends added), %s in %v",
		len(h), len(hotKeys), ghosts, res, time.Since(start).Round(time.Millisecond))
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
