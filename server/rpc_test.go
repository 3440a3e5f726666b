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
	}
	got, err := decodeProposeRequest(appendProposeRequest(nil, props))
	if err != nil || !reflect.DeepEqual(got, props) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for name, bad := range map[string][]byte{
		"empty":          nil,
		"version":        {2, 0},
		"count too big":  {1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"empty proposal": appendProposeRequest(nil, [][]fsm.Command{{}}),
		"trailing":       append(appendProposeRequest(nil, props), 0),
		"truncated":      appendProposeRequest(nil, props)[:10],
	} {
		if _, err := decodeProposeRequest(bad); !errors.Is(err, ErrBadRPC) {
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
	f.Add(appendProposeRequest(nil, [][]fsm.Command{{fsm.Acquire{Key: "k", Interval: 1, Max: 1, Slop: 1}}}))
	// What a follower forwards: calls numbered in its forwarding session,
	// kept for its window (ops 11-14), and one with a client's token.
	f.Add(appendProposeRequest(nil, [][]fsm.Command{newForwardSession().number([]fsm.Command{fsm.Acquire{Key: "k", Interval: 1, Max: 1}, fsm.Cancel{Key: "k", ValidAt: 5}}, 18_000)}))
	f.Add(appendProposeRequest(nil, [][]fsm.Command{
		{fsm.Acquire{Key: "k", Interval: 1, Max: 1, Session: 1 << 63, Seq: 1<<64 - 1, TokenWindow: 18_000}, fsm.Acquire{Key: "k", Interval: 1, Max: 1, Session: 1 << 63, TokenWindow: 18_000}},
		{fsm.Cancel{Key: "k", ValidAt: 5, Session: 1 << 63, Seq: 1, TokenWindow: 18_000}, fsm.Acquire{Key: "j", Interval: 1, Max: 1, Token: "t", Session: 9, Seq: 2}},
	}))
	reply, _ := appendProposeReply(nil, []rpcOutcome{{res: []fsm.Result{{Count: 1}}}, {err: ErrNotLeader}})
	f.Add(reply)
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		if props, err := decodeProposeRequest(b); err == nil {
			again, err := decodeProposeRequest(appendProposeRequest(nil, props))
			if err != nil || !reflect.DeepEqual(props, again) {
				t.Fatalf("request round trip: %v", err)
			}
		}
		for n := 0; n < 3; n++ {
			decodeProposeReply(b, n)
		}
	})
}
