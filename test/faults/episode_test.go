package faults_test

import (
	"fmt"
	"time"
)

// episode is one fault as it happened.
type episode struct {
	f      fault
	target string // the node the fault hit ("" for link faults: see cut)
	note   string
	// start is when the fault was in place (a killed node reaped, a
	// stopped node's every thread stopped, a link's proxies frozen),
	// healStart when healing began, healed when it had ended (times since
	// the run started). checkMinority relies on start being no earlier
	// than the moment the node could no longer act.
	start, healStart, healed time.Duration
	cut                      map[pair]bool   // links cut for the whole of [start, healStart]
	down                     map[string]bool // nodes dead or stopped for the whole of it
	voters                   []string        // the voters during it
	recovered                bool            // a leader was agreed on after healing
}

func (e *episode) String() string {
	s := fmt.Sprintf("%-20s at %6.2fs-%6.2fs", e.f.kind, e.start.Seconds(), e.healStart.Seconds())
	if e.target != "" {
		s += " on " + e.target
	}
	if e.note != "" {
		s += " (" + e.note + ")"
	}
	return s
}

// canGrant reports whether node n could have had an acquire committed while
// e's faults held: a grant needs a leader L, n itself or a node n can send
// to (n forwards to L), that can send to a majority of the voters (counting
// itself) which are up. With a cut link A→B, what A sends to B is lost and
// B's replies to A's requests too; B's own requests to A pass.
func (e *episode) canGrant(n string) bool {
	if e.down[n] {
		return false
	}
	quorum := len(e.voters)/2 + 1
	isVoter := map[string]bool{}
	for _, v := range e.voters {
		isVoter[v] = true
	}
	reach := func(l string) int {
		r := 1
		for _, y := range e.voters {
			if y != l && !e.down[y] && !e.cut[pair{l, y}] {
				r++
			}
		}
		return r
	}
	for _, l := range e.voters {
		if l != n && (e.down[l] || e.cut[pair{n, l}]) {
			continue
		}
		if isVoter[l] && reach(l) >= quorum {
			return true
		}
	}
	return false
}

// runFault injects f, holds it, heals it and waits for the cluster to agree
// on a leader again (up to 30 s).
func runFault(c *cluster, s schedule, f fault, now func() time.Duration) *episode {
	t := c.t
	e := &episode{f: f, cut: map[pair]bool{}, down: map[string]bool{}, voters: c.ids}
	leader := c.anyLeader()
	if leader == "" {
		leader = c.waitLeader(10 * time.Second)
	}
	if leader == "" {
		leader = c.ids[0]
		e.note = "no leader when the fault began"
	}
	followers := c.others(leader)
	follower := followers[f.pick%len(followers)]
	cutBoth := func(a, b string) {
		c.cut(a, b)
		c.cut(b, a)
		e.cut[pair{a, b}], e.cut[pair{b, a}] = true, true
	}
	var heal func()
	switch f.kind {
	case killLeader, killFollower, snapshotRestart:
		e.target = leader
		if f.kind == killFollower {
			e.target = follower
		}
		if f.kind == snapshotRestart {
			e.target = c.ids[f.pick%len(c.ids)]
			if _, err := c.do(e.target, 10*time.Second, "RAFT.SNAPSHOT"); err != nil {
				e.note = "RAFT.SNAPSHOT: " + err.Error()
			}
		}
		c.proc(e.target).Kill()
		e.down[e.target] = true
		heal = func() { c.proc(e.target).Restart() }
	case stopLeader, stopFollower:
		e.target = leader
		if f.kind == stopFollower {
			e.target = follower
		}
		took := c.stop(e.target)
		e.note = fmt.Sprintf("stopped %v after SIGSTOP", took.Round(time.Millisecond))
		e.down[e.target] = true
		heal = func() { c.cont(e.target) }
	case isolateLeader, isolateFollower:
		e.target = leader
		if f.kind == isolateFollower {
			e.target = follower
		}
		for _, o := range c.others(e.target) {
			cutBoth(e.target, o)
		}
		heal = c.healAll
	case bridge:
		e.target = c.ids[f.pick%len(c.ids)]
		ends := c.others(e.target)
		cutBoth(ends[0], ends[1])
		e.note = "bridge between " + ends[0] + " and " + ends[1]
		heal = c.healAll
	case oneWayFromLeader:
		c.cut(leader, follower)
		e.cut[pair{leader, follower}] = true
		e.note = leader + "→" + follower + " lost"
		heal = c.healAll
	case oneWayToLeader:
		c.cut(follower, leader)
		e.cut[pair{follower, leader}] = true
		e.note = follower + "→" + leader + " lost"
		heal = c.healAll
	case skewedLeader:
		e.target = s.skewed
		if s.skewed != leader {
			if _, err := c.do(leader, 10*time.Second, "RAFT.TRANSFER", s.skewed); err != nil {
				e.note = "RAFT.TRANSFER: " + err.Error()
			}
		}
		heal = func() {}
	case membership:
		e.target = follower
		c.proc(follower).Kill()
		e.down[follower] = true
		e.voters = c.others(follower)
		removed := false
		for i := 0; i < 20 && !removed; i++ {
			via := c.anyLeader()
			if via == "" || via == follower {
				via = c.others(follower)[i%2]
			}
			_, err := c.do(via, 10*time.Second, "RAFT.REMOVE", follower)
			removed = err == nil
			if !removed {
				time.Sleep(250 * time.Millisecond)
			}
		}
		if !removed {
			t.Errorf("membership: RAFT.REMOVE %s failed 20 times", follower)
		}
		heal = func() {
			var join []string
			for _, o := range c.others(follower) {
				if c.proc(o).Running() {
					join = append(join, c.proc(o).Addr())
				}
			}
			c.start(follower, join, "") // an empty data directory
		}
	}
	e.start = now()
	time.Sleep(f.hold)
	e.healStart = now()
	heal()
	e.healed = now()
	e.recovered = c.waitLeader(30*time.Second) != ""
	if !e.recovered {
		t.Errorf("no leader agreed on by every node within 30s after healing %s", e)
	}
	time.Sleep(f.gap)
	return e
}
