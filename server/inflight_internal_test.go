package server

import (
	"testing"

	"github.com/throttledb/throttledb/fsm"
)

// TestInFlight: a command counts for its keys (every key, for FLUSHALL)
// from add until done, however many are in flight.
func TestInFlight(t *testing.T) {
	acq := fsm.Acquire{Key: "a", Interval: 1000, Max: 1}
	tests := []struct {
		name string
		add  [][]fsm.Command
		done [][]fsm.Command
		want map[string]bool
	}{
		{"nothing", nil, nil, map[string]bool{"a": false}},
		{"acquire", [][]fsm.Command{{acq}}, nil, map[string]bool{"a": true, "b": false}},
		{"acquire done", [][]fsm.Command{{acq}}, [][]fsm.Command{{acq}}, map[string]bool{"a": false}},
		{"two acquires, one done", [][]fsm.Command{{acq}, {acq}}, [][]fsm.Command{{acq}}, map[string]bool{"a": true}},
		{"cancel", [][]fsm.Command{{fsm.Cancel{Key: "a", ValidAt: 5}}}, nil, map[string]bool{"a": true, "b": false}},
		{"reset", [][]fsm.Command{{fsm.Reset{Keys: []string{"a", "b"}}}}, nil, map[string]bool{"a": true, "b": true, "c": false}},
		{"cl.throttle", [][]fsm.Command{{fsm.CellThrottle{Key: "a"}}}, nil, map[string]bool{"a": true, "b": false}},
		{"flushall", [][]fsm.Command{{fsm.FlushAll{}}}, nil, map[string]bool{"a": true, "zz": true}},
		{"flushall done", [][]fsm.Command{{fsm.FlushAll{}}}, [][]fsm.Command{{fsm.FlushAll{}}}, map[string]bool{"a": false}},
		{"membership", [][]fsm.Command{{fsm.SetNode{ID: "a"}, fsm.RemoveNode{ID: "a"}}}, nil, map[string]bool{"a": false}},
		{"a transaction", [][]fsm.Command{{acq, fsm.Reset{Keys: []string{"b"}}}}, nil, map[string]bool{"a": true, "b": true, "c": false}},
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
			for k, want := range tt.want {
				if got := v.touches(k); got != want {
					t.Errorf("touches(%q) = %v, want %v", k, got, want)
				}
			}
		})
	}
	var nilView *inFlight
	nilView.add([]fsm.Command{acq}) // a proposer without a view counts nothing
}
