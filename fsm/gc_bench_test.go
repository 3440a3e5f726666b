package fsm

import (
	"runtime"
	"strconv"
	"testing"
)

// BenchmarkGCWithState measures one full garbage collection (ns/op) of a
// process holding a state machine with a large remembered load: what the
// collector must mark of it is paid on every node, every cycle, and the
// cycles come faster the more the node allocates (its request load).
// Compare the sub-benchmarks with "empty", the process alone.
//
//	go test ./fsm -run '^$' -bench GCWithState -benchtime 20x
func BenchmarkGCWithState(b *testing.B) {
	fill := func(n int, cmd func(i int) Command) *FSM {
		f := New(Config{})
		for i := 0; i < n; i += 512 {
			e := Entry{Now: 1000}
			for j := i; j < min(i+512, n); j++ {
				e.Commands = append(e.Commands, cmd(j))
			}
			f.Apply(&raftLog{Data: e.Encode()})
		}
		return f
	}
	key := func(i int) string { return "key:" + strconv.Itoa(i%10_000) }
	for _, c := range []struct {
		name  string
		state func() *FSM
	}{
		{"empty", func() *FSM { return New(Config{}) }},
		// A follower's forwarded load: a window of session numbers.
		{"sequences-1M", func() *FSM {
			return fill(1_000_000, func(i int) Command {
				return Acquire{Key: key(i), Interval: 1, Max: 1 << 40, Session: 0x5eed, Seq: uint64(i), TokenWindow: 18_000}
			})
		}},
		// Go client load: every call carries a token, kept a minute
		// (10,000 grants a second).
		{"tokens-600k", func() *FSM {
			return fill(600_000, func(i int) Command {
				return Acquire{Key: key(i), Interval: 1, Max: 1 << 40, Token: "tok-" + strconv.Itoa(i) + "-0123456789abcdef"}
			})
		}},
		// The keys themselves: 1M distinct keys.
		{"keys-1M", func() *FSM {
			return fill(1_000_000, func(i int) Command {
				return Acquire{Key: "key:" + strconv.Itoa(i), Interval: 1000, Max: 5}
			})
		}},
		// 1M keys of 28 bytes, longer than a record holds.
		{"long-keys-1M", func() *FSM {
			return fill(1_000_000, func(i int) Command {
				return Acquire{Key: "tenant-0001:api:" + strconv.Itoa(100_000_000_000+i), Interval: 1000, Max: 5}
			})
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			f := c.state()
			runtime.GC()
			b.ResetTimer()
			for b.Loop() {
				runtime.GC()
			}
			runtime.KeepAlive(f)
		})
	}
}
