package server

import (
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
			v := newInFlight()
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
