package server_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
	"github.com/throttledb/throttledb/server"
)

// dataModes returns the permission bits of everything in a data directory,
// by path relative to it.
func dataModes(t *testing.T, dir string) map[string]fs.FileMode {
	t.Helper()
	modes := map[string]fs.FileMode{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := os.Lstat(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		modes[rel] = st.Mode().Perm()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return modes
}

// checkPrivate fails unless every directory in dir is 0700 and every file
// 0600, and a snapshot is among them.
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	snapshots := 0
	for rel, mode := range dataModes(t, dir) {
		st, _ := os.Lstat(filepath.Join(dir, rel))
		want := fs.FileMode(0o600)
		if st.IsDir() {
			want = 0o700
		}
		if mode != want {
			t.Errorf("%s: mode %#o, want %#o", rel, mode, want)
		}
		if filepath.Base(rel) == "state.bin" {
			snapshots++
		}
	}
	if snapshots == 0 {
		t.Fatal("no snapshot in the data directory")
	}
}

// TestDataDirIsPrivate checks that a node's data directory, raft.db and
// snapshot directories and files are readable by its own user only (0700,
// 0600; raft's snapshot store alone would make them 0755 and 0644), and
// that a data directory left world-readable by an older version is
// tightened when the node starts on it; with each log store (raft-wal
// alone creates its files 0644).
func TestDataDirIsPrivate(t *testing.T) {
	for _, store := range []string{server.LogStoreBolt, server.LogStoreWAL} {
		t.Run(store, func(t *testing.T) { testDataDirIsPrivate(t, store) })
	}
}

func testDataDirIsPrivate(t *testing.T, store string) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data") // created by the node
	n := testcluster.StartNode(t, testcluster.Options{DataDir: dir, Configure: func(c *server.Config) { c.LogStore = store }})
	testcluster.WaitFor(t, 10*time.Second, "leader", n.Server.IsLeader)
	c := n.Client()
	for i := 0; i < 5; i++ {
		if err := c.Do(ctx, "THROTTLE.ACQUIRE", "k", 1000, 10).Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.Do(ctx, "RAFT.SNAPSHOT").Err(); err != nil {
			t.Fatal(err)
		}
	}
	n.Stop()
	checkPrivate(t, dir)

	// An older version's data directory: everything world-readable.
	for rel := range dataModes(t, dir) {
		path := filepath.Join(dir, rel)
		st, _ := os.Lstat(path)
		mode := fs.FileMode(0o644)
		if st.IsDir() {
			mode = 0o755
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	n.Restart(false)
	testcluster.WaitFor(t, 10*time.Second, "leader after restart", n.Server.IsLeader)
	n.Stop()
	checkPrivate(t, dir)
}
