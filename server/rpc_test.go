package server

import (
	"errors"
	"reflect"
	"testing"

	"github.com/throttledb/throttledb/fsm"
)

func TestProposeRequestRoundTrip(t *testing.T) {
	props := [][]fsm.Command{
		{fsm.Acquire{Key: "k", Interval: 1000, Max: 5, Slop: 100}},
		{fsm.Acquire{Key: "a", Interval: 10, Max: 0, Slop: 1}, fsm.Reset{Keys: []string{"b", "c"}}},
		{fsm.Acquire{Key: "s", Interval: 10, Max: 0, Slop: 1, Session: 3, Seq: 9, TokenWindow: 18_000}},
	}
	tests := []struct {
		name      string
		v         byte
		early     []bool
		wantEarly []bool
	}{
		{"version 1", rpcVersion, nil, nil},
		{"version 1 drops marks", rpcVersion, []bool{true, false, true}, nil},
		{"version 2, no marks", rpcVersionEarly, nil, nil},
		{"version 2, all unmarked", rpcVersionEarly, []bool{false, false, false}, nil},
		{"version 2, marks", rpcVersionEarly, []bool{true, false, true}, []bool{true, false, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := appendProposeRequest(nil, tc.v, props, tc.early)
			if b[0] != tc.v {
				t.Fatalf("version byte %d, want %d", b[0], tc.v)
			}
			got, early, err := decodeProposeRequest(b)
			if err != nil || !reflect.DeepEqual(got, props) || !reflect.DeepEqual(early, tc.wantEarly) {
				t.Fatalf("round trip: %+v, %v, %v", got, early, err)
			}
		})
	}
	v2 := appendProposeRequest(nil, rpcVersionEarly, props[:1], []bool{true})
	for name, bad := range map[string][]byte{
		"empty":           nil,
		"version 0":       {0, 0},
		"version 3":       {3, 0},
		"count too big":   {1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"empty proposal":  appendProposeRequest(nil, rpcVersion, [][]fsm.Command{{}}, nil),
		"empty, v2":       appendProposeRequest(nil, rpcVersionEarly, [][]fsm.Command{{}}, []bool{true}),
		"trailing":        append(appendProposeRequest(nil, rpcVersion, props, nil), 0),
		"truncated":       appendProposeRequest(nil, rpcVersion, props, nil)[:10],
		"unknown flag":    append([]byte{2, 1, 2}, v2[3:]...),
		"no flags byte":   append([]byte{2, 1}, v2[3:]...),
		"v1 body as v2":   append([]byte{2}, appendProposeRequest(nil, rpcVersion, props[:1], nil)[1:]...),
		"truncated flags": {2, 1},
	} {
		if _, _, err := decodeProposeRequest(bad); !errors.Is(err, ErrBadRPC) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestProposeReplyRoundTrip(t *testing.T) {
	outs := []rpcOutcome{
		{res: []fsm.Result{{Permit: fsm.Permit{Granted: true, ValidAt: 5, ExpiresAt: 6}}, {Count: 2}}},
		{err: ErrNotLeader},
		{err: ErrShuttingDown},
		{err: ErrOutcomeUnknown},
		{err: ErrOOM},
	}
	b, err := appendProposeReply(nil, outs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeProposeReply(b, len(outs))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got[0].res, outs[0].res) || got[0].err != nil {
		t.Errorf("results: %+v", got[0])
	}
	for i, want := range []error{ErrNotLeader, ErrNotLeader, ErrOutcomeUnknown} {
		if !errors.Is(got[i+1].err, want) {
			t.Errorf("outcome %d: %v, want %v", i+1, got[i+1].err, want)
		}
	}
	if !errors.Is(got[4].err, ErrOOM) {
		t.Errorf("OOM outcome: %v", got[4].err)
	}
	b, _ = appendProposeReply(nil, []rpcOutcome{{err: remoteError("ERR something")}})
	if got, err := decodeProposeReply(b, 1); err != nil || errorText(got[0].err) != "ERR something" {
		t.Errorf("error reply: %+v, %v", got, err)
	}
	if _, err := decodeProposeReply(b, len(outs)+1); !errors.Is(err, ErrBadRPC) {
		t.Errorf("wrong count accepted: %v", err)
	}
}

func FuzzDecodePropose(f *testing.F) {
	f.Add(appendProposeRequest(nil, rpcVersion, [][]fsm.Command{{fsm.Acquire{Key: "k", Interval: 1, Max: 1, Slop: 1}}}, nil))
	f.Add(appendProposeRequest(nil, rpcVersionEarly, [][]fsm.Command{{fsm.Acquire{Key: "k", Interval: 1, Max: 1, Slop: 1}}, {fsm.Reset{Keys: []string{"k"}}}}, []bool{true, false}))
	f.Add(appendProposeRequest(nil, rpcVersionEarly, nil, nil)) // the forwarder's probe
	f.Add([]byte{2, 1, 0xfe})
	// What a follower forwards: calls numbered in its forwarding session,
	// kept for its window (ops 11-14), and one with a client's token.
	f.Add(appendProposeRequest(nil, rpcVersionEarly, [][]fsm.Command{newForwardSession().number([]fsm.Command{fsm.Acquire{Key: "k", Interval: 1, Max: 1}, fsm.Cancel{Key: "k", ValidAt: 5}}, 18_000)}, []bool{true}))
	f.Add(appendProposeRequest(nil, rpcVersion, [][]fsm.Command{
		{fsm.Acquire{Key: "k", Interval: 1, Max: 1, Session: 1 << 63, Seq: 1<<64 - 1, TokenWindow: 18_000}, fsm.Acquire{Key: "k", Interval: 1, Max: 1, Session: 1 << 63, TokenWindow: 18_000}},
		{fsm.Cancel{Key: "k", ValidAt: 5, Session: 1 << 63, Seq: 1, TokenWindow: 18_000}, fsm.Acquire{Key: "j", Interval: 1, Max: 1, Token: "t", Session: 9, Seq: 2}},
	}, nil))
	reply, _ := appendProposeReply(nil, []rpcOutcome{{res: []fsm.Result{{Count: 1}}}, {err: ErrNotLeader}})
	f.Add(reply)
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		if props, early, err := decodeProposeRequest(b); err == nil {
			again, againEarly, err := decodeProposeRequest(appendProposeRequest(nil, rpcVersionEarly, props, early))
			if err != nil || !reflect.DeepEqual(props, again) || !reflect.DeepEqual(early, againEarly) {
				t.Fatalf("request round trip: %v", err)
			}
		}
		for n := 0; n < 3; n++ {
			decodeProposeReply(b, n)
		}
	})
}
