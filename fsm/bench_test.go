package fsm

import (
	"strconv"
	"testing"

	"github.com/hashicorp/raft"
)

// BenchmarkApplyAcquire measures Apply of one-command entries over 10k keys,
// decoding included: the state machine's cost per grant.
func BenchmarkApplyAcquire(b *testing.B) {
	benchApply(b, 1)
}

// BenchmarkApplyBatch64 measures Apply of 64-command entries, per command.
func BenchmarkApplyBatch64(b *testing.B) {
	benchApply(b, 64)
}

func benchApply(b *testing.B, batch int) {
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = "key:" + strconv.Itoa(i)
	}
	entries := make([][]byte, 1024)
	for i := range entries {
		e := Entry{Now: int64(1_000_000 + i)}
		for j := 0; j < batch; j++ {
			e.Commands = append(e.Commands, Acquire{Key: keys[(i*batch+j)%len(keys)], Interval: 100, Max: 1_000_000, Slop: 10})
		}
		entries[i] = e.Encode()
	}
	f := New(Config{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		f.Apply(&raft.Log{Data: entries[(i/batch)%len(entries)]})
	}
}

// BenchmarkApplyAcquireToken is BenchmarkApplyAcquire with a fresh
// 17-byte idempotency token on every command (what the Go client and
// forwarding followers send): the cost of remembering it, and of pruning
// tokens a minute of cluster time old (entries are 1 ms apart).
func BenchmarkApplyAcquireToken(b *testing.B) {
	entries := make([][]byte, b.N)
	for i := range entries {
		tok := "tok-" + strconv.FormatInt(1<<62+int64(i), 36) // 4 + 13 bytes
		e := Entry{Now: int64(1_000_000 + i), Commands: []Command{
			Acquire{Key: "key:" + strconv.Itoa(i%10_000), Interval: 100, Max: 1_000_000, Slop: 10, Token: tok},
		}}
		entries[i] = e.Encode()
	}
	f := New(Config{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f.Apply(&raft.Log{Data: entries[i]})
	}
}

// BenchmarkCheckEntry is what a node's start-up check pays per log entry
// of 512 acquires with tokens (a pipelined load's entry), against
// decoding it.
func BenchmarkCheckEntry(b *testing.B) {
	e := Entry{Now: 1}
	for i := range 512 {
		e.Commands = append(e.Commands, Acquire{Key: "key:" + strconv.Itoa(i), Interval: 1000, Max: 5, Slop: 100, Token: "0123456789abcdefghijkl", TokenWindow: 18_000})
	}
	data := e.Encode()
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := DecodeEntry(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("check", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if err := CheckEntry(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWouldDeny measures the leader's check for a denial without the
// log (WouldDeny) on calls it grants, over keys that each hold one slot
// (the random-key load, where nearly every call is granted), and on one
// full key (the hot key, where every call is denied).
func BenchmarkWouldDeny(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run("grant/keys="+strconv.Itoa(n), func(b *testing.B) {
			f := New(Config{})
			keys := make([]string, n)
			e := Entry{Now: 1_000_000}
			for i := range keys {
				keys[i] = "key:" + strconv.Itoa(i)
				e.Commands = append(e.Commands, Acquire{Key: keys[i], Interval: 1000, Max: 5, Slop: 10})
				if len(e.Commands) == 1000 || i == n-1 {
					f.Apply(&raft.Log{Data: e.Encode()})
					e.Commands = e.Commands[:0]
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// A stride through the keys, so that consecutive calls do not
				// share cache lines, as random keys do not.
				k := keys[(i*7919)%n]
				if _, ok := f.WouldDeny(Acquire{Key: k, Interval: 1000, Max: 5, Slop: 10}, 1_000_100, nil); ok {
					b.Fatal("denied a call with room")
				}
			}
		})
	}
	b.Run("deny/hot", func(b *testing.B) {
		f := New(Config{})
		c := Acquire{Key: "hot", Interval: 1000, Max: 1, Slop: 10}
		f.Apply(&raft.Log{Data: Entry{Now: 1_000_000, Commands: []Command{c, c}}.Encode()})
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, ok := f.WouldDeny(c, 1_000_100, nil); !ok {
				b.Fatal("granted a call on a full key")
			}
		}
	})
}
