package fsm

import (
	"math/rand"
	"sort"
	"strconv"
	"testing"
)

// TestTokenTableMatchesModel drives the token table with random tokens of
// mixed windows at a rising clock and checks it against a plain list: the
// same tokens remembered, the same cost counted as expired, the same
// order (tokenTable.live) however they were added.
func TestTokenTableMatchesModel(t *testing.T) {
	for seed := int64(1); seed <= 50; seed++ {
		rng := rand.New(rand.NewSource(seed))
		tab := newTokenTable()
		var model []tokenStamp
		now := int64(0)
		for step := 0; step < 400; step++ {
			now += rng.Int63n(700)
			tab.prune(now)
			kept := model[:0]
			for _, s := range model {
				if s.until() > now {
					kept = append(kept, s)
				}
			}
			model = kept
			for n := rng.Intn(4); n > 0; n-- {
				var window int64
				switch rng.Intn(3) {
				case 1:
					window = 1 + rng.Int63n(TokenWindow-1)
				case 2:
					window = 1 + rng.Int63n(3000)
				}
				id := tokenID{kind: tokenKind(1 + rng.Intn(2)), key: "k" + strconv.Itoa(rng.Intn(5)), token: strconv.Itoa(step) + "." + strconv.Itoa(n)}
				tab.add(id, now, window, Permit{ValidAt: now})
				model = append(model, tokenStamp{id: id, at: now, window: window})
			}
			later := now + rng.Int63n(TokenWindow)
			var wantExpired int64
			for _, s := range model {
				if s.until() <= later {
					wantExpired += TokenCost(s.id.key, s.id.token)
				}
			}
			if got := tab.expiredCost(later); got != wantExpired {
				t.Fatalf("seed %d step %d: expired cost at %d is %d, want %d", seed, step, later, got, wantExpired)
			}
			var plain, timed []tokenStamp
			for _, s := range model {
				if s.window == 0 || s.window == TokenWindow {
					s.window = 0
					plain = append(plain, s)
				} else {
					timed = append(timed, s)
				}
			}
			sort.Slice(timed, func(i, j int) bool { return timed[i].before(timed[j]) })
			want := append(plain, timed...)
			got := tab.live()
			if len(got) != len(want) || len(tab.byID) != len(want) {
				t.Fatalf("seed %d step %d: %d live (%d by id), want %d", seed, step, len(got), len(tab.byID), len(want))
			}
			var mem int64
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("seed %d step %d: live[%d] = %+v, want %+v", seed, step, i, got[i], want[i])
				}
				mem += TokenCost(want[i].id.key, want[i].id.token)
			}
			if tab.mem != mem {
				t.Fatalf("seed %d step %d: memory %d, want %d", seed, step, tab.mem, mem)
			}
		}
	}
}

// BenchmarkSnapshotTokens times Snapshot, which every commit waits for,
// with about 1.2 million client tokens remembered (20 a millisecond of
// cluster time for TokenWindow: a fleet sending IDs at 20k/s): kept for
// TokenWindow (the queue), and kept for a window of their own (the heap,
// which only a proposer other than this server's routers fills).
func BenchmarkSnapshotTokens(b *testing.B) {
	for _, bc := range []struct {
		name   string
		window int64
	}{{"window", 0}, {"own-window", TokenWindow - 1}} {
		b.Run(bc.name, func(b *testing.B) {
			const perMs = 20
			f := New(Config{})
			var n int
			for now := int64(1_000_000); now < 1_000_000+TokenWindow-1; now++ {
				e := Entry{Now: now, Commands: make([]Command, perMs)}
				for j := range e.Commands {
					n++
					e.Commands[j] = Acquire{Key: "key:" + strconv.Itoa(n%10_000), Interval: 1, Max: 1 << 40, Token: "id-" + strconv.Itoa(n), TokenWindow: bc.window}
				}
				f.Apply(&raftLog{Data: e.Encode()})
			}
			if got, want := f.Tokens(), int(TokenWindow-1)*perMs; got != want {
				b.Fatalf("%d tokens remembered, want %d", got, want)
			}
			for b.Loop() {
				s, err := f.Snapshot()
				if err != nil {
					b.Fatal(err)
				}
				s.Release()
			}
		})
	}
}
