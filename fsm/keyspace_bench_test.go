package fsm

import (
	"fmt"
	"math/rand"
	"strconv"
	"testing"

	"github.com/hashicorp/raft"
)

// BenchmarkApplyNewKeys measures Apply of 64-command entries, per command,
// where every command creates a key that the next entry prunes: the cost
// of a key's whole life (map, expiry heap, scan index, hash).
func BenchmarkApplyNewKeys(b *testing.B) {
	entries := make([][]byte, 1024)
	for i := range entries {
		e := Entry{Now: int64(1_000_000 + 2*i)}
		for j := range 64 {
			e.Commands = append(e.Commands, Acquire{Key: "key:" + strconv.Itoa(i*64+j), Interval: 1, Max: 1, Slop: 0})
		}
		entries[i] = e.Encode()
	}
	f := New(Config{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 64 {
		f.Apply(&raft.Log{Data: entries[(i/64)%len(entries)]})
	}
}

// BenchmarkApplyCell measures Apply of 64-command entries of CL.THROTTLE,
// per command, over 10k keys.
func BenchmarkApplyCell(b *testing.B) {
	entries := make([][]byte, 1024)
	for i := range entries {
		e := Entry{Now: int64(1_000_000_000 + i)}
		for j := range 64 {
			e.Commands = append(e.Commands, CellThrottle{Key: "key:" + strconv.Itoa((i*64+j)%10_000), MaxBurst: 100, Count: 1000, Period: 1, Quantity: 1})
		}
		entries[i] = e.Encode()
	}
	f := New(Config{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 64 {
		f.Apply(&raft.Log{Data: entries[(i/64)%len(entries)]})
	}
}

// BenchmarkScan1M measures one SCAN call (COUNT 10) on a million keys,
// walking the cursor round and round.
func BenchmarkScan1M(b *testing.B) {
	f := New(Config{})
	for i := 0; i < 1_000_000; i += 4096 {
		e := Entry{Now: 1000}
		for j := i; j < min(i+4096, 1_000_000); j++ {
			e.Commands = append(e.Commands, Acquire{Key: "key:" + strconv.Itoa(j), Interval: 1e9, Max: 1})
		}
		f.Apply(&raft.Log{Data: e.Encode()})
	}
	b.ReportAllocs()
	b.ResetTimer()
	var cursor uint64
	for range b.N {
		cursor, _ = f.Scan(cursor, 10, 0, nil)
	}
}

// BenchmarkApplyChurn measures Apply, per command, of the load
// bench/compare.sh drives: 64-command entries of THROTTLE.ACQUIRE key 1000 5
// on 10k random 20-byte keys (rN:key:%012d, longer than a record holds),
// the prefix changing every 20,000 commands and cluster time moving 5 ms a
// entry, so that keys are created and expire as fast as they are used.
func BenchmarkApplyChurn(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	entries := make([][]byte, 2048)
	for i := range entries {
		e := Entry{Now: int64(1_000_000 + 5*i)}
		for j := range 64 {
			prefix := 10 + (i*64+j)/20_000
			key := fmt.Sprintf("r%d:key:%012d", prefix, rng.Intn(10_000))
			e.Commands = append(e.Commands, Acquire{Key: key, Interval: 1000, Max: 5})
		}
		entries[i] = e.Encode()
	}
	f := New(Config{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 64 {
		n := i / 64
		if n > 0 && n%len(entries) == 0 {
			b.StopTimer()
			f = New(Config{}) // cluster time starts over with a new state
			b.StartTimer()
		}
		f.Apply(&raft.Log{Index: uint64(n + 1), Data: entries[n%len(entries)]})
	}
}
