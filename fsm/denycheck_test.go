package fsm

import "testing"

// TestWouldDeny checks the leader's check for a denial without the log: it
// answers only when the applied state alone denies and nothing on the key
// is in flight, and then exactly what Apply answers for the same call at
// the same time.
func TestWouldDeny(t *testing.T) {
	none := func(string) bool { return false }
	all := func(string) bool { return true }
	full := []step{ // hot: slots at 0, 1000 (max 1)
		{now: 0, cmds: []Command{acq("hot", 1000, 1)}, want: []Result{granted(0, 0, 100, 0)}},
		{now: 0, cmds: []Command{acq("hot", 1000, 1)}, want: []Result{granted(1000, 1000, 100, 1)}},
	}
	withToken := acq("hot", 1000, 1)
	withToken.Token = "t1"
	tests := []struct {
		name     string
		setup    []step
		c        Acquire
		now      int64
		inFlight func(string) bool
		want     bool
	}{
		{"absent key grants", nil, acq("hot", 1000, 1), 0, none, false},
		{"full key denies", full, acq("hot", 1000, 1), 10, none, true},
		{"nil view: nothing in flight", full, acq("hot", 1000, 1), 10, nil, true},
		{"full key, command in flight", full, acq("hot", 1000, 1), 10, all, false},
		{"in flight on another key only", full, acq("hot", 1000, 1), 10, func(k string) bool { return k != "hot" }, true},
		{"a slot has freed: grant", full, acq("hot", 1000, 1), 1000, none, false},
		{"expired key", full, acq("hot", 1000, 1), 5000, none, false},
		{"a bigger max grants", full, acq("hot", 1000, 2), 10, none, false},
		{"a shorter interval, one pending too many", full, acq("hot", 10, 1), 10, none, true},
		{"a shorter interval with room", full, acq("hot", 10, 100), 10, none, false},
		{"time before the clock reads as the clock", full, acq("hot", 1000, 1), -500, none, true},
		{"cost 2 denied", full, acqN("hot", 1000, 2, 2), 500, none, true},
		{"cost 2 granted", full, acqN("hot", 1000, 3, 2), 500, none, false},
		{"token: through the log", full, withToken, 10, none, false},
		{"invalid interval: the log's error", full, acq("hot", 0, 1), 10, none, false},
		{"CL.THROTTLE key: WRONGTYPE from the log", []step{
			{now: 0, cmds: []Command{CellThrottle{Key: "hot", MaxBurst: 0, Count: 1, Period: 1000, Quantity: 1}}, want: []Result{{}}},
		}, acq("hot", 1000, 0), 10, none, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(Config{})
			for _, s := range tt.setup {
				apply(t, f, s.now, s.cmds...)
			}
			before := f.Stats()
			p, ok := f.WouldDeny(tt.c, tt.now, tt.inFlight)
			if ok != tt.want {
				t.Fatalf("WouldDeny = %+v, %v; want %v", p, ok, tt.want)
			}
			if f.Stats() != before {
				t.Fatalf("WouldDeny changed the stats: %+v -> %+v", before, f.Stats())
			}
			// What the log answers for the same call at the same time.
			res := apply(t, f, tt.now, tt.c)[0]
			if !ok {
				return
			}
			if res.Err != nil || res.Permit != p {
				t.Fatalf("WouldDeny = %+v; Apply = %+v (err %v)", p, res.Permit, res.Err)
			}
		})
	}
}
