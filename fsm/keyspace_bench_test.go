package fsm

import (
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
