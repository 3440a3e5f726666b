package server_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/throttledb/throttledb/internal/testcluster"
	"github.com/throttledb/throttledb/server"
)

// servedDataDir returns the data directory of a bolt node that served writes,
// took a snapshot, served more, and was closed: a real raft.db of a few
// hundred KB with a snapshot and a log tail after it.
func servedDataDir(t *testing.T) string {
	t.Helper()
	n := testcluster.StartNode(t, testcluster.Options{Configure: func(c *server.Config) { c.LogStore = server.LogStoreBolt }})
	c := n.Client()
	ctx := context.Background()
	pad := strings.Repeat("k", 1000) // long keys grow the log quickly
	write := func(from, to int) {
		for i := from; i < to; i++ {
			if err := c.Do(ctx, "THROTTLE.ACQUIRE", fmt.Sprintf("%s-%d", pad, i%50), 3_600_000, 100).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(0, 150)
	if err := c.Do(ctx, "RAFT.SNAPSHOT").Err(); err != nil {
		t.Fatal(err)
	}
	write(150, 400)
	n.Stop()
	return n.DataDir()
}

// copyDir copies a data directory, so that each case damages its own.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "data")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// newestSnapshot returns the path of the newest snapshot directory in dir.
func newestSnapshot(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	newest := ""
	for _, e := range ents {
		if e.IsDir() && !strings.HasSuffix(e.Name(), ".tmp") && e.Name() > newest {
			newest = e.Name() // term-index-time: names of one term sort by index
		}
	}
	if newest == "" {
		t.Fatal("no snapshot")
	}
	return filepath.Join(dir, "snapshots", newest)
}

// TestDamagedStorageIsNotServed damages copies of a real data directory in
// the ways the issue found (random bytes over the middle of raft.db, which
// used to open and serve without a word; raft.db cut to half, which used to
// serve and then die of SIGBUS) and more. Each time Start returns
// ErrDataCorrupt naming the damaged file and pointing to cluster.md, never
// serves and never panics; Recover refuses the same directory the same way.
func TestDamagedStorageIsNotServed(t *testing.T) {
	good := servedDataDir(t)
	rng := rand.New(rand.NewSource(7))
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string) (file string)
	}{
		{"64 KB of random bytes in the middle of raft.db", func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "raft.db")
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() < 256<<10 {
				t.Fatalf("raft.db is only %d bytes; the test needs a bigger one", st.Size())
			}
			junk := make([]byte, 64<<10)
			rng.Read(junk)
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(junk, st.Size()/2-int64(len(junk))/2); err != nil {
				t.Fatal(err)
			}
			return path
		}},
		{"raft.db truncated to half", func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "raft.db")
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, st.Size()/2); err != nil {
				t.Fatal(err)
			}
			return path
		}},
		{"raft.db truncated to 5000 bytes", func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "raft.db")
			if err := os.Truncate(path, 5000); err != nil {
				t.Fatal(err)
			}
			return path
		}},
		{"both meta pages overwritten", func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "raft.db")
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, off := range []int64{16, int64(os.Getpagesize()) + 16} {
				if _, err := f.WriteAt([]byte("not a bbolt meta"), off); err != nil {
					t.Fatal(err)
				}
			}
			return path
		}},
		{"a snapshot's state.bin corrupted", func(t *testing.T, dir string) string {
			path := filepath.Join(newestSnapshot(t, dir), "state.bin")
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			data[len(data)/2] ^= 0xff
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}},
		{"a snapshot's meta.json garbled", func(t *testing.T, dir string) string {
			path := filepath.Join(newestSnapshot(t, dir), "meta.json")
			if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}},
		{"a log entry of an unknown type", func(t *testing.T, dir string) string {
			// What a hostile peer on an unauthenticated Raft port once
			// appended: Apply panicked on it at every restart.
			path := filepath.Join(dir, "raft.db")
			store, err := raftboltdb.New(raftboltdb.Options{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			last, err := store.LastIndex()
			if err != nil {
				t.Fatal(err)
			}
			if err := store.StoreLog(&raft.Log{Index: last + 1, Term: 1, Type: raft.LogCommand, Data: []byte{99, 1}}); err != nil {
				t.Fatal(err)
			}
			return path
		}},
		{"a stable-store term of 3 bytes", func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "raft.db")
			store, err := raftboltdb.New(raftboltdb.Options{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			if err := store.Set([]byte("CurrentTerm"), []byte{0, 0, 1}); err != nil {
				t.Fatal(err)
			}
			return path
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDir(t, good)
			refusesDamage(t, dir, tt.damage(t, dir))
		})
	}

	t.Run("the undamaged copy serves", func(t *testing.T) {
		n := testcluster.StartNode(t, testcluster.Options{DataDir: copyDir(t, good)})
		testcluster.WaitFor(t, 10*time.Second, "the copy to lead", n.Server.IsLeader)
		if got := n.Server.FSM().DBSize(0); got != 50 {
			t.Fatalf("%d keys, want 50", got)
		}
	})
}

// refusesDamage checks that a node neither starts nor recovers from the
// damaged data directory dir: both say ErrDataCorrupt, and Start's error
// names the damaged file and where the recovery steps are (cluster.md).
func refusesDamage(t *testing.T, dir, file string) {
	t.Helper()
	s, err := server.Start(context.Background(), server.Config{
		ID: "n1", Addr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", DataDir: dir,
		Logger: testcluster.Logger("damaged"),
	})
	if err == nil {
		s.Close()
		t.Fatal("Start served a damaged data directory")
	}
	if !errors.Is(err, server.ErrDataCorrupt) || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "cluster.md") {
		t.Fatalf("Start: %v\nwant ErrDataCorrupt naming %s and cluster.md", err, file)
	}
	t.Logf("%v", err)
	_, err = server.Recover(server.RecoverConfig{ID: "n1", DataDir: dir, RaftAddr: "127.0.0.1:1", Logger: testcluster.Logger("recover")})
	if !errors.Is(err, server.ErrDataCorrupt) {
		t.Fatalf("Recover: %v, want ErrDataCorrupt", err)
	}
}
