package server

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/throttledb/throttledb/fsm"
)

// BenchmarkOpenStoresChecked measures openStores, damage checks included,
// on a raft.db of 20,480 entries (twice the default TrailingLogs, so about
// the most a node keeps between snapshots), each a batch of 8 acquires on
// 40-byte keys.
//
//	go test ./server/ -run XXX -bench OpenStoresChecked -benchtime 5x -v
func BenchmarkOpenStoresChecked(b *testing.B) {
	dir := b.TempDir()
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db"), NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	const entries, perEntry = 20480, 8
	var batch []*raft.Log
	for i := 1; i <= entries; i++ {
		var cmds []fsm.Command
		for j := 0; j < perEntry; j++ {
			cmds = append(cmds, fsm.Acquire{Key: fmt.Sprintf("tenant-%08d:endpoint-%016d", i, j), Interval: 1000, Max: 10, Slop: 100})
		}
		batch = append(batch, &raft.Log{Index: uint64(i), Term: 1, Type: raft.LogCommand, Data: fsm.Entry{Now: int64(i), Commands: cmds}.Encode()})
		if len(batch) == 512 || i == entries {
			if err := store.StoreLogs(batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := store.Close(); err != nil {
		b.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, "raft.db")); err == nil {
		b.Logf("raft.db: %d entries, %d bytes", entries, st.Size())
	}
	b.Run("checked", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			store, _, _, err := openStores(dir, "", true, hclog.NewNullLogger(), nil)
			if err != nil {
				b.Fatal(err)
			}
			store.Close()
		}
	})
	// For comparison: opening without any check.
	b.Run("unchecked", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db"), NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			store.Close()
		}
	})
}
