package fsm

import (
	"bytes"
	"io"
	"math"
	"math/rand"
	"testing"
)

// TestWouldDenyAgreesWithApply checks that the horizon (horizon.go) never
// hides a denial: with nothing in flight, WouldDeny must answer true for
// exactly the calls Apply then denies, with the same Permit, whatever came
// before on the key: grants with other intervals, give-backs, resets,
// expiry, a CL.THROTTLE key, FLUSHALL, or a restore from a snapshot (which
// rebuilds the store and its horizon).
func TestWouldDenyAgreesWithApply(t *testing.T) {
	keys := []string{"a", "b", "c", "d", "a-key-longer-than-the-inline-bytes-of-a-record"}
	intervals := []int64{1, 10, 100, 1000, 1 << 40}
	for seed := int64(1); seed <= 10; seed++ {
		rng := rand.New(rand.NewSource(seed))
		f := New(Config{})
		now := int64(1_000_000)
		lastValid := map[string]int64{}
		denials := 0
		for i := 0; i < 4000; i++ {
			now += rng.Int63n(30)
			if rng.Intn(200) == 0 {
				now += 10_000 // past most keys' expiry
			}
			key := keys[rng.Intn(len(keys))]
			switch r := rng.Intn(100); {
			case r < 80:
				c := acq(key, intervals[rng.Intn(len(intervals)-1)], rng.Int63n(4))
				if rng.Intn(100) == 0 {
					c.Interval = intervals[len(intervals)-1]
				}
				c.Cost = rng.Int63n(c.Max + 2)
				if rng.Intn(50) == 0 {
					c.Max = math.MaxInt64 // the bound does not fit: no shortcut
				}
				stamp := now - rng.Int63n(20) // stamps may go backwards
				p, ok := f.WouldDeny(c, stamp, nil)
				res := apply(t, f, stamp, c)[0]
				denied := res.Err == nil && !res.Permit.Granted
				if ok != denied || ok && res.Permit != p {
					t.Fatalf("seed %d step %d: %+v at %d: WouldDeny = %+v, %v; Apply = %+v (err %v)",
						seed, i, c, stamp, p, ok, res.Permit, res.Err)
				}
				if denied {
					denials++
				}
				if res.Err == nil && res.Permit.Granted {
					lastValid[key] = res.Permit.ValidAt
				}
			case r < 88:
				apply(t, f, now, Cancel{Key: key, ValidAt: lastValid[key]})
			case r < 92:
				apply(t, f, now, Reset{Keys: []string{key}})
			case r < 95:
				apply(t, f, now, CellThrottle{Key: key, MaxBurst: 1, Count: 1, Period: 1, Quantity: 1})
			case r < 96:
				apply(t, f, now, FlushAll{})
			default:
				g := New(Config{})
				if err := g.Restore(io.NopCloser(bytes.NewReader(persisted(t, f).Bytes()))); err != nil {
					t.Fatal(err)
				}
				f = g
			}
		}
		if denials < 100 {
			t.Fatalf("seed %d: only %d denials: the test no longer exercises WouldDeny", seed, denials)
		}
	}
}

// TestDenyBound checks denyBound against decide directly: for a key whose
// newest slot is last, decide denies only when last is past the bound.
func TestDenyBound(t *testing.T) {
	for _, c := range []Acquire{acq("k", 100, 0), acq("k", 100, 3), acqN("k", 100, 3, 4), acqN("k", 7, 2, 2), acq("k", 1, 0)} {
		now := int64(50_000)
		bound, ok := denyBound(c, now)
		if !ok {
			t.Fatalf("%+v: no bound", c)
		}
		for last := now - 2*c.Interval; last <= now+6*c.Interval; last++ {
			st := &record{last: last}
			st.ivsp = uint64(uint32(c.Interval))
			d, err := decide(st, c, now)
			if err != nil {
				t.Fatal(err)
			}
			if !d.permit.Granted && last <= bound {
				t.Fatalf("%+v: last %d is within the bound %d, yet decide denies", c, last, bound)
			}
			if d.permit.Granted && last == bound+1 {
				t.Fatalf("%+v: last %d just past the bound %d, yet decide grants: the bound is not tight", c, last, bound)
			}
		}
	}
	for _, c := range []Acquire{acq("k", 0, 1), acq("k", 1, -1), acq("k", math.MaxInt64, 5)} {
		if _, ok := denyBound(c, 1); ok {
			t.Fatalf("%+v: a bound for an invalid or overflowing call", c)
		}
	}
}
