package fsm

import "testing"

// TestWouldDeny checks the leader's check for a denial without the log: it
// answers only when the applied state alone denies and the in-flight view
// calls nothing on the key unsafe, and then exactly what Apply answers for
// the same call at the same time; and it stays a denial whatever in-flight
// ACQUIREs of the key with its interval do (TestWouldDenyWhateverCommits).
func TestWouldDeny(t *testing.T) {
	none := func(string, int64) bool { return false }
	all := func(string, int64) bool { return true }
	full := []step{ // hot: slots at 0, 1000 (max 1)
		{now: 0, cmds: []Command{acq("hot", 1000, 1)}, want: []Result{granted(0, 0, 100, 0)}},
		{now: 0, cmds: []Command{acq("hot", 1000, 1)}, want: []Result{granted(1000, 1000, 100, 1)}},
	}
	withToken := acq("hot", 1000, 1)
	withToken.Token = "t1"
	seq := func(n uint64) Acquire {
		a := acq("hot", 1000, 1)
		a.Session, a.Seq = 7, n
		return a
	}
	// The same full key, its second slot granted to a forwarded number.
	fullBySeq := []step{full[0], {now: 0, cmds: []Command{seq(2)}, want: []Result{granted(1000, 1000, 100, 1)}}}
	tests := []struct {
		name     string
		setup    []step
		c        Acquire
		now      int64
		inFlight func(string, int64) bool
		want     bool
	}{
		{"absent key grants", nil, acq("hot", 1000, 1), 0, none, false},
		{"full key denies", full, acq("hot", 1000, 1), 10, none, true},
		{"nil view: nothing in flight", full, acq("hot", 1000, 1), 10, nil, true},
		{"full key, command in flight", full, acq("hot", 1000, 1), 10, all, false},
		{"the view is asked about the call's interval", full, acq("hot", 1000, 1), 10, func(k string, iv int64) bool { return iv != 1000 }, true},
		{"in flight on another key only", full, acq("hot", 1000, 1), 10, func(k string, _ int64) bool { return k != "hot" }, true},
		{"a slot has freed: grant", full, acq("hot", 1000, 1), 1000, none, false},
		{"expired key", full, acq("hot", 1000, 1), 5000, none, false},
		{"a bigger max grants", full, acq("hot", 1000, 2), 10, none, false},
		{"a shorter interval, one pending too many", full, acq("hot", 10, 1), 10, none, true},
		{"a shorter interval with room", full, acq("hot", 10, 100), 10, none, false},
		{"time before the clock reads as the clock", full, acq("hot", 1000, 1), -500, none, true},
		{"cost 2 denied", full, acqN("hot", 1000, 2, 2), 500, none, true},
		{"cost 2 granted", full, acqN("hot", 1000, 3, 2), 500, none, false},
		{"token: through the log", full, withToken, 10, none, false},
		{"a forwarded number never applied denies", fullBySeq, seq(3), 10, none, true},
		{"a forwarded number applied: the log answers it again", fullBySeq, seq(2), 10, none, false},
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

// TestWouldDenyWhateverCommits: when WouldDeny denies a call with only
// ACQUIREs of the key with the call's interval in flight, the call is
// denied whichever of them commit, in whatever order, at any time up to
// the denial's: they can only take more slots.
func TestWouldDenyWhateverCommits(t *testing.T) {
	const iv = 1000
	setups := []struct {
		name  string
		setup []Command // applied at 0
		c     Acquire
		now   int64
	}{
		{"max 1, one reserved", []Command{acq("k", iv, 1), acq("k", iv, 1)}, acq("k", iv, 1), 500},
		{"max 0, granted now", []Command{acq("k", iv, 0)}, acq("k", iv, 0), 999},
		{"max 3, full", []Command{acq("k", iv, 3), acq("k", iv, 3), acq("k", iv, 3), acq("k", iv, 3)}, acq("k", iv, 3), 10},
		{"cost 2 asked, one slot left", []Command{acq("k", iv, 2), acq("k", iv, 2)}, acqN("k", iv, 2, 3), 1},
	}
	// In flight: ACQUIREs with the call's interval, other max and cost.
	inFlight := []Acquire{acq("k", iv, 5), acqN("k", iv, 9, 3), acq("k", iv, 0)}
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			f := New(Config{})
			apply(t, f, 0, s.setup...)
			want, ok := f.WouldDeny(s.c, s.now, func(string, int64) bool { return false })
			if !ok {
				t.Fatal("not denied on the applied state")
			}
			if want.Granted {
				t.Fatalf("WouldDeny answered a grant: %+v", want)
			}
			// Every order of every subset, applied at times from 0 to now.
			var orders func(prefix []Acquire, rest []Acquire)
			checked := 0
			orders = func(prefix, rest []Acquire) {
				for _, at := range []int64{0, s.now / 2, s.now} {
					g := New(Config{})
					apply(t, g, 0, s.setup...)
					for _, a := range prefix {
						apply(t, g, at, a)
					}
					if res := apply(t, g, s.now, s.c)[0]; res.Err != nil || res.Permit.Granted {
						t.Fatalf("after %+v at %d: %+v (err %v), want a denial", prefix, at, res.Permit, res.Err)
					}
					checked++
				}
				for i := range rest {
					next := append(append([]Acquire(nil), rest[:i]...), rest[i+1:]...)
					orders(append(append([]Acquire(nil), prefix...), rest[i]), next)
				}
			}
			orders(nil, inFlight)
			if checked != 16*3 {
				t.Fatalf("checked %d orders, want 48", checked)
			}
		})
	}
}
