package fsm

import (
	"math/rand"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"
)

// TestTokenTableMatchesModel drives the token table with random tokens of
// mixed windows at a rising clock and checks it against a plain list: the
// same tokens remembered, the same cost counted as expired, the same
// order (tokenView.records) however they were added; and that a view
// taken at some step still yields that step's tokens after later adds
// and prunes, which is what a snapshot relies on.
func TestTokenTableMatchesModel(t *testing.T) {
	type openView struct {
		v    *tokenView
		want []tokenRecord
		step int
	}
	defer func(n int) { tokenChunkLen = n }(tokenChunkLen)
	defer func(n int) { heapChunkLen = n }(heapChunkLen)
	for seed := int64(1); seed <= 50; seed++ {
		rng := rand.New(rand.NewSource(seed))
		tokenChunkLen = []int{1, 2, 3, 7, 256}[seed%5]
		heapChunkLen = []int{1, 2, 5, 1024}[seed%4]
		tab := newTokenTable()
		var model []tokenRecord
		var views []openView
		checkView := func(i, step int) {
			o := views[i]
			views = append(views[:i], views[i+1:]...)
			if got := o.v.records(); !slices.Equal(got, o.want) {
				t.Fatalf("seed %d step %d: the view of step %d yields %d tokens, want %d as then\n got %+v\nwant %+v", seed, step, o.step, len(got), len(o.want), got, o.want)
			}
		}
		now := int64(0)
		for step := 0; step < 400; step++ {
			now += rng.Int63n(700)
			tab.prune(now)
			kept := model[:0:0]
			for _, r := range model {
				if (tokenStamp{at: r.at, window: r.window}).until() > now {
					kept = append(kept, r)
				}
			}
			model = kept
			for n := rng.Intn(8); n > 0; n-- {
				var window int64
				switch rng.Intn(3) {
				case 1:
					window = 1 + rng.Int63n(TokenWindow-1)
				case 2:
					window = 1 + rng.Int63n(3000)
				}
				id := tokenID{kind: tokenKind(1 + rng.Intn(2)), key: "k" + strconv.Itoa(rng.Intn(5)), token: strconv.Itoa(step) + "." + strconv.Itoa(n)}
				p := Permit{Granted: id.kind == tokenAcquire, ValidAt: now, Pending: int64(n)}
				tab.add(id, now, window, p)
				if window == TokenWindow {
					window = 0
				}
				model = append(model, tokenRecord{kind: id.kind, key: id.key, token: id.token, at: now, window: window, permit: p})
			}
			later := now + rng.Int63n(TokenWindow)
			var wantExpired int64
			for _, r := range model {
				if (tokenStamp{at: r.at, window: r.window}).until() <= later {
					wantExpired += TokenCost(r.key, r.token)
				}
			}
			if got := tab.expiredCost(later); got != wantExpired {
				t.Fatalf("seed %d step %d: expired cost at %d is %d, want %d", seed, step, later, got, wantExpired)
			}
			var plain, timed []tokenRecord
			for _, r := range model {
				if r.window == 0 {
					plain = append(plain, r)
				} else {
					timed = append(timed, r)
				}
			}
			stamp := func(r tokenRecord) tokenStamp {
				return tokenStamp{id: tokenID{kind: r.kind, key: r.key, token: r.token}, at: r.at, window: r.window}
			}
			sort.Slice(timed, func(i, j int) bool { return stamp(timed[i]).before(stamp(timed[j])) })
			want := append(plain, timed...)
			got := tab.view().records()
			if plain := tab.records(); !slices.Equal(plain, got) {
				t.Fatalf("seed %d step %d: records and a view's records differ", seed, step)
			}
			if len(got) != len(want) || tab.indexed() != len(want) {
				t.Fatalf("seed %d step %d: %d live (%d by id), want %d", seed, step, len(got), tab.indexed(), len(want))
			}
			var mem int64
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("seed %d step %d: live[%d] = %+v, want %+v", seed, step, i, got[i], want[i])
				}
				mem += TokenCost(want[i].key, want[i].token)
			}
			if tab.mem != mem {
				t.Fatalf("seed %d step %d: memory %d, want %d", seed, step, tab.mem, mem)
			}
			chunks := 0
			for c := tab.first; c != nil; c = c.next {
				chunks++
			}
			if chunks > tab.n/tokenChunkLen+2 {
				t.Fatalf("seed %d step %d: %d tokens in the queue hold %d chunks", seed, step, tab.n, chunks)
			}
			if len(tab.timed.chunks) != (tab.timed.n+heapChunkLen-1)/heapChunkLen {
				t.Fatalf("seed %d step %d: %d tokens in the heap hold %d chunks", seed, step, tab.timed.n, len(tab.timed.chunks))
			}
			switch r := rng.Intn(10); {
			case r == 0 && len(views) < 4:
				views = append(views, openView{v: tab.view(), want: want, step: step})
			case r == 1 && len(views) > 0:
				checkView(rng.Intn(len(views)), step)
			}
		}
		for len(views) > 0 {
			checkView(0, 400)
		}
	}
}

// BenchmarkSnapshotTokens times Snapshot, which every commit waits for,
// with about 1.2 million client tokens remembered (20 a millisecond of
// cluster time for TokenWindow: a fleet sending IDs at 20k/s): kept for
// TokenWindow (the queue), and kept for a window of their own (the heap,
// which only a proposer other than this server's routers fills). Each
// round takes a snapshot and then applies the next entry of 20 tokens,
// which prunes as many: snapshot-ns is Snapshot alone, ns/op both, so
// that what the heap's copy-on-write moves onto the next Apply shows.
func BenchmarkSnapshotTokens(b *testing.B) {
	for _, bc := range []struct {
		name   string
		window int64
	}{{"window", 0}, {"own-window", TokenWindow - 1}} {
		b.Run(bc.name, func(b *testing.B) {
			const perMs = 20
			f := New(Config{})
			var n int
			now := int64(1_000_000)
			entry := func() []byte {
				e := Entry{Now: now, Commands: make([]Command, perMs)}
				for j := range e.Commands {
					n++
					e.Commands[j] = Acquire{Key: "key:" + strconv.Itoa(n%10_000), Interval: 1, Max: 1 << 40, Token: "id-" + strconv.Itoa(n), TokenWindow: bc.window}
				}
				now++
				return e.Encode()
			}
			for range TokenWindow - 1 {
				f.Apply(&raftLog{Data: entry()})
			}
			if got, want := f.Tokens(), int(TokenWindow-1)*perMs; got != want {
				b.Fatalf("%d tokens remembered, want %d", got, want)
			}
			var held time.Duration
			for b.Loop() {
				b.StopTimer()
				next := entry()
				b.StartTimer()
				start := time.Now()
				s, err := f.Snapshot()
				held += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				s.Release()
				f.Apply(&raftLog{Data: next})
			}
			b.ReportMetric(float64(held.Nanoseconds())/float64(b.N), "snapshot-ns/op")
		})
	}
}
