package faults_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// faultKind is one kind of fault the schedule injects.
type faultKind int

const (
	killLeader       faultKind = iota // kill -9 the leader, restart it at heal
	killFollower                      // kill -9 a follower, restart it at heal
	stopLeader                        // SIGSTOP the leader past the election timeout, SIGCONT at heal
	stopFollower                      // SIGSTOP a follower
	isolateLeader                     // cut every link to and from the leader (with three nodes, the leader's minority)
	isolateFollower                   // cut every link to and from a follower
	bridge                            // two nodes cannot talk to each other; both talk to the third, the bridge
	oneWayFromLeader                  // the leader's messages to one follower are lost; that follower's reach the leader
	oneWayToLeader                    // one follower's messages to the leader (Raft and forwarded commands) are lost
	skewedLeader                      // hand leadership to the node whose clock is skewed
	snapshotRestart                   // a node takes a snapshot, is killed -9, and restarts from it
	membership                        // a follower is killed and removed, then re-added with an empty data directory
	numKinds
)

var kindNames = [...]string{"kill-leader", "kill-follower", "stop-leader", "stop-follower", "isolate-leader",
	"isolate-follower", "bridge", "one-way-from-leader", "one-way-to-leader", "skewed-leader",
	"snapshot-restart", "membership"}

func (k faultKind) String() string { return kindNames[k] }

// fault is one step of a schedule.
type fault struct {
	kind faultKind
	pick int           // chooses among candidate nodes (followers, bridge), modulo their number
	hold time.Duration // how long the fault lasts before it is healed
	gap  time.Duration // quiet time after the cluster has recovered
}

// schedule is what a seed replays: the skewed node and its offset, and the
// faults in order. Which node is the leader when a fault starts is the
// cluster's doing; the schedule names roles.
type schedule struct {
	seed   uint64
	skewed string
	offset time.Duration
	faults []fault
}

// makeSchedule draws a schedule from seed for a fault phase of about d. The
// first faults take the kinds in order from kind 4×(seed-1) on, so that the
// short run's seeds 1-3 (about four faults each) cover every kind; after
// them, kinds come in seeded permutations.
func makeSchedule(seed uint64, ids []string, d time.Duration) schedule {
	rng := rand.New(rand.NewPCG(seed, 0x7468726f74746c65))
	s := schedule{seed: seed, skewed: ids[rng.IntN(len(ids))]}
	s.offset = time.Duration(100+rng.IntN(500)) * time.Millisecond
	if rng.IntN(2) == 0 {
		s.offset = -s.offset
	}
	var total time.Duration
	perm := make([]int, numKinds)
	for i := range perm {
		perm[i] = (4*int((seed-1)%uint64(numKinds)) + i) % int(numKinds)
	}
	for i := 0; total < d; i++ {
		if i > 0 && i%len(perm) == 0 {
			perm = rng.Perm(int(numKinds))
		}
		f := fault{
			kind: faultKind(perm[i%len(perm)]),
			pick: rng.IntN(6),
			// Longer than the election timeout (500 ms) with room to spare,
			// so that a stopped or cut-off leader is replaced.
			hold: time.Duration(1200+rng.IntN(1300)) * time.Millisecond,
			gap:  time.Duration(200+rng.IntN(500)) * time.Millisecond,
		}
		s.faults = append(s.faults, f)
		// About a second for a recovery on top of hold and gap.
		total += f.hold + f.gap + time.Second
	}
	return s
}

func (s schedule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %s's clock skewed by %v; faults:", s.seed, s.skewed, s.offset)
	for i, f := range s.faults {
		fmt.Fprintf(&b, "\n  %2d. %-20s pick %d, hold %v, then %v", i+1, f.kind, f.pick, f.hold, f.gap)
	}
	return b.String()
}
