package server

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/throttledb/throttledb/fsm"
)

// TestInFlight: a command in flight makes a denial of its key unsafe
// (every key's, for FLUSHALL) from add until done, except ACQUIREs of the
// key with the asked interval, however many are in flight.
func TestInFlight(t *testing.T) {
	acq := func(key string, iv int64) fsm.Command { return fsm.Acquire{Key: key, Interval: iv, Max: 1} }
	type ask struct {
		key string
		iv  int64
	}
	tests := []struct {
		name string
		add  [][]fsm.Command
		done [][]fsm.Command
		want map[ask]bool
	}{
		{"nothing", nil, nil, map[ask]bool{{"a", 1000}: false}},
		{"acquire, same interval", [][]fsm.Command{{acq("a", 1000)}}, nil, map[ask]bool{{"a", 1000}: false, {"a", 10}: true, {"b", 10}: false}},
		{"acquires of two intervals", [][]fsm.Command{{acq("a", 1000)}, {acq("a", 10)}}, nil, map[ask]bool{{"a", 1000}: true, {"a", 10}: true}},
		{"the other interval done", [][]fsm.Command{{acq("a", 1000)}, {acq("a", 10)}}, [][]fsm.Command{{acq("a", 10)}}, map[ask]bool{{"a", 1000}: false, {"a", 10}: true}},
		{"the first interval done", [][]fsm.Command{{acq("a", 1000)}, {acq("a", 10)}}, [][]fsm.Command{{acq("a", 1000)}}, map[ask]bool{{"a", 1000}: true, {"a", 10}: true}},
		{"all done, then another interval", [][]fsm.Command{{acq("a", 1000)}}, [][]fsm.Command{{acq("a", 1000)}}, map[ask]bool{{"a", 10}: false, {"a", 1000}: false}},
		{"cancel", [][]fsm.Command{{fsm.Cancel{Key: "a", ValidAt: 5}}}, nil, map[ask]bool{{"a", 1000}: true, {"b", 1000}: false}},
		{"cancel done", [][]fsm.Command{{fsm.Cancel{Key: "a", ValidAt: 5}}}, [][]fsm.Command{{fsm.Cancel{Key: "a", ValidAt: 5}}}, map[ask]bool{{"a", 1000}: false}},
		{"reset", [][]fsm.Command{{fsm.Reset{Keys: []string{"a", "b"}}}}, nil, map[ask]bool{{"a", 1000}: true, {"b", 1000}: true, {"c", 1000}: false}},
		{"cl.throttle", [][]fsm.Command{{fsm.CellThrottle{Key: "a"}}}, nil, map[ask]bool{{"a", 1000}: true, {"b", 1000}: false}},
		{"flushall", [][]fsm.Command{{fsm.FlushAll{}}}, nil, map[ask]bool{{"a", 1000}: true, {"zz", 1}: true}},
		{"flushall done", [][]fsm.Command{{fsm.FlushAll{}}}, [][]fsm.Command{{fsm.FlushAll{}}}, map[ask]bool{{"a", 1000}: false}},
		{"membership", [][]fsm.Command{{fsm.SetNode{ID: "a"}, fsm.RemoveNode{ID: "a"}}}, nil, map[ask]bool{{"a", 1000}: false}},
		{"a transaction", [][]fsm.Command{{acq("a", 1000), fsm.Reset{Keys: []string{"b"}}}}, nil, map[ask]bool{{"a", 1000}: false, {"b", 1000}: true, {"c", 1000}: false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := distinctSlots("a", "b", "c", "zz")
			for _, c := range tt.add {
				v.add(c)
			}
			for _, c := range tt.done {
				v.done(c)
			}
			for q, want := range tt.want {
				if got := v.unsafe(q.key, q.iv); got != want {
					t.Errorf("unsafe(%q, %d) = %v, want %v", q.key, q.iv, got, want)
				}
			}
			for _, c := range tt.done {
				v.add(c)
				v.done(c)
			}
		})
	}
	var nilView *inFlight
	nilView.add([]fsm.Command{acq("a", 1)}) // a proposer without a view counts nothing
}

// distinctSlots returns an inFlight in which keys have slots of their own,
// so that a test's answers do not depend on the seed.
func distinctSlots(keys ...string) *inFlight {
	for {
		v := newInFlight()
		seen := map[*keyFlight]bool{}
		for _, k := range keys {
			seen[v.slot(k)] = true
		}
		if len(seen) == len(keys) {
			return v
		}
	}
}

// TestInFlightSharedSlots: keys that share a slot may make a denial unsafe
// that is safe for the key alone, never the reverse. Random sequences of
// commands on a few keys go into a table where every key shares one slot,
// one where each has its own, and an exact model of the promise (a command
// on the key other than an ACQUIRE of the asked interval is in flight):
// whatever the model calls unsafe, both tables must too.
func TestInFlightSharedSlots(t *testing.T) {
	keys := []string{"a", "b", "c"}
	ivs := []int64{10, 1000}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		shared, own := newInFlightSlots(1), distinctSlots(keys...)
		var live [][]fsm.Command // in flight, in the order added
		for range 30 {
			if len(live) > 0 && rng.IntN(3) == 0 {
				i := rng.IntN(len(live))
				shared.done(live[i])
				own.done(live[i])
				live = append(live[:i], live[i+1:]...)
			} else {
				k := keys[rng.IntN(len(keys))]
				var c fsm.Command = fsm.Acquire{Key: k, Interval: ivs[rng.IntN(len(ivs))], Max: 1}
				if rng.IntN(5) == 0 {
					c = fsm.Cancel{Key: k, ValidAt: 1}
				}
				cmds := []fsm.Command{c}
				shared.add(cmds)
				own.add(cmds)
				live = append(live, cmds)
			}
			for _, k := range keys {
				for _, iv := range ivs {
					if !exactUnsafe(live, k, iv) {
						continue
					}
					if !own.unsafe(k, iv) {
						t.Fatalf("round %d: own slots: unsafe(%q, %d) = false, but %v is in flight", round, k, iv, live)
					}
					if !shared.unsafe(k, iv) {
						t.Fatalf("round %d: shared slot: unsafe(%q, %d) = false, but %v is in flight", round, k, iv, live)
					}
				}
			}
		}
	}
}

// exactUnsafe is inFlight.unsafe's promise, from the commands in flight.
func exactUnsafe(live [][]fsm.Command, key string, iv int64) bool {
	for _, cmds := range live {
		for _, c := range cmds {
			switch c := c.(type) {
			case fsm.Acquire:
				if c.Key == key && c.Interval != iv {
					return true
				}
			case fsm.Cancel:
				if c.Key == key {
					return true
				}
			}
		}
	}
	return false
}

// TestDenyAfterOwnCommands: a connection's call is not denied without the
// log while one of its own earlier commands on the key is in flight, since
// it must be decided after them.
func TestDenyAfterOwnCommands(t *testing.T) {
	f := fsm.New(fsm.Config{})
	full := fsm.Entry{Now: 0, Commands: []fsm.Command{fsm.Acquire{Key: "k", Interval: 1000, Max: 0}}}
	f.Apply(&raft.Log{Index: 1, Data: full.Encode()})
	d := &denier{fsm: f, flight: newInFlight(), clock: func() int64 { return 10 }, ready: func() bool { return true }}
	call := fsm.Acquire{Key: "k", Interval: 1000, Max: 0}
	queued := func(c fsm.Command) pendingReply { return pendingReply{cmd: c, t: &ticket{}} }
	tests := []struct {
		name string
		mine []pendingReply
		want bool
	}{
		{"nothing before it", nil, true},
		{"an acquire of another key", []pendingReply{queued(fsm.Acquire{Key: "j", Interval: 1000})}, true},
		{"a reset of the key", []pendingReply{queued(fsm.Reset{Keys: []string{"x", "k"}})}, false},
		{"an acquire of the key", []pendingReply{queued(call)}, false},
		{"a flushall", []pendingReply{queued(fsm.FlushAll{})}, false},
		{"a reply already decided", []pendingReply{{cmd: nil, val: "x"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, ok := d.deny(call, tt.mine)
			if ok != tt.want {
				t.Fatalf("deny = %+v, %v; want %v", res, ok, tt.want)
			}
			if ok && (res.Permit.Granted || res.Permit.WaitMs != 990) {
				t.Fatalf("deny = %+v, want a denial with wait 990", res.Permit)
			}
		})
	}
	withToken := call
	withToken.Token = "t"
	if _, ok := d.deny(withToken, nil); ok {
		t.Error("a call with a token was denied without the log")
	}
	d.ready = func() bool { return false }
	if _, ok := d.deny(call, nil); ok {
		t.Error("a node that is not the ready leader denied without the log")
	}
}

// BenchmarkInFlight measures counting a one-command proposal in and out,
// as the proposer does for every command, over 10,000 keys of 20 bytes.
func BenchmarkInFlight(b *testing.B) {
	cmds := make([][]fsm.Command, 10_000)
	for i := range cmds {
		cmds[i] = []fsm.Command{fsm.Acquire{Key: fmt.Sprintf("r10:key:%012d", i), Interval: 1000, Max: 5}}
	}
	v := newInFlight()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c := cmds[i%len(cmds)]
		v.add(c)
		if i >= 800 { // about a -P 16 load's commands in flight
			v.done(cmds[(i-800)%len(cmds)])
		}
	}
}
