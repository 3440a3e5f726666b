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
