package server_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/throttledb/throttledb/internal/testcluster"
	"github.com/throttledb/throttledb/server"
)

// TestRecoverAfterLosingTheMajority loses two nodes of three for good,
// recovers the survivor's data directory with server.Recover, and checks
// that the survivor alone leads with every key it held, that it corrects a
// Raft address given wrongly at recovery, and that fresh nodes join it. It
// runs with each log store.
func TestRecoverAfterLosingTheMajority(t *testing.T) {
	for _, store := range []string{server.LogStoreBolt, server.LogStoreWAL} {
		t.Run(store, func(t *testing.T) { testRecoverAfterLosingTheMajority(t, store) })
	}
}

// currentTerm reads the current term Raft keeps in the data directory
// dir's stable store.
func currentTerm(t *testing.T, dir, store string) uint64 {
	t.Helper()
	var s interface {
		GetUint64([]byte) (uint64, error)
		Close() error
	}
	var err error
	if store == server.LogStoreWAL {
		meta := &metadb.BoltMetaDB{}
		var w *wal.WAL
		w, err = wal.Open(filepath.Join(dir, "wal"), wal.WithMetaStore(meta))
		if err == nil {
			defer meta.Close() // raft-wal's Close leaves it open
			s = w
		}
	} else {
		s, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	term, err := s.GetUint64([]byte("CurrentTerm"))
	if err != nil {
		t.Fatal(err)
	}
	return term
}

func testRecoverAfterLosingTheMajority(t *testing.T, store string) {
	ctx := context.Background()
	const iv = 3_600_000
	withStore := func(c *server.Config) { c.LogStore = store }
	c := testcluster.Start(t, 3, testcluster.Options{Configure: withStore})
	leader := c.WaitForLeader(10 * time.Second)
	var last []int64
	for i := 0; i < 12; i++ {
		v, err := leader.Client().Do(ctx, "THROTTLE.ACQUIRE", fmt.Sprintf("k%d", i%4), iv, 5).Int64Slice()
		if err != nil {
			t.Fatal(err)
		}
		last = v // k3's latest slot
	}
	survivor := c.Followers()[0]
	testcluster.WaitFor(t, 10*time.Second, "the survivor to apply every grant", func() bool {
		return reflect.DeepEqual(survivor.Server.FSM().Keys(0), leader.Server.FSM().Keys(0))
	})
	want := survivor.Server.FSM().Keys(0)
	if err := survivor.Client().Do(ctx, "RAFT.SNAPSHOT").Err(); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		n.Stop()
	}

	t.Run("a directory holding only a copied snapshot", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.CopyFS(filepath.Join(dir, "snapshots"), os.DirFS(filepath.Join(survivor.DataDir(), "snapshots"))); err != nil {
			t.Fatal(err)
		}
		rep, err := server.Recover(server.RecoverConfig{ID: "solo", DataDir: dir, RaftAddr: "127.0.0.1:1", LogStore: store})
		if err != nil {
			t.Fatal(err)
		}
		// Such a directory has no current term (0): Recover must raise it
		// to the snapshot's, or the node's next entries would carry a
		// lower term than the snapshot.
		if term := currentTerm(t, dir, store); term < rep.Term {
			t.Fatalf("current term %d, want at least the snapshot's %d", term, rep.Term)
		}
		solo := testcluster.StartNode(t, testcluster.Options{ID: "solo", DataDir: dir})
		testcluster.WaitFor(t, 10*time.Second, "the recovered copy to lead", solo.Server.IsLeader)
		if got := solo.Server.FSM().Keys(0); !reflect.DeepEqual(got, want) {
			t.Fatalf("keys differ:\n got %v\nwant %v", got, want)
		}
		solo.Stop()
	})

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			cfg  server.RecoverConfig
			is   error
		}{
			{"empty data directory", server.RecoverConfig{ID: "x", DataDir: t.TempDir(), RaftAddr: "127.0.0.1:7000"}, server.ErrNoState},
			{"no raft address", server.RecoverConfig{ID: "x", DataDir: survivor.DataDir()}, nil},
			{"port 0", server.RecoverConfig{ID: "x", DataDir: survivor.DataDir(), RaftAddr: "127.0.0.1:0"}, nil},
			{"wildcard host", server.RecoverConfig{ID: "x", DataDir: survivor.DataDir(), RaftAddr: "0.0.0.0:7000"}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := server.Recover(tc.cfg)
				if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) {
					t.Fatalf("got %v, want an error (%v)", err, tc.is)
				}
			})
		}
	})

	// Recover with a Raft address the node will not get: it must correct
	// its own entry once it leads.
	rep, err := server.Recover(server.RecoverConfig{
		ID: survivor.ID(), DataDir: survivor.DataDir(), RaftAddr: "127.0.0.1:1", Logger: testcluster.Logger(survivor.ID()),
	})
	if err != nil {
		t.Fatal(err)
	}
	others := []string{}
	for _, n := range c.Nodes {
		if n != survivor {
			others = append(others, n.ID())
		}
	}
	slices.Sort(rep.Forgot)
	if rep.Keys != len(want) || !slices.Equal(rep.Forgot, others) || rep.Index == 0 || rep.Term == 0 {
		t.Fatalf("report %+v; want %d keys, forgot %v", rep, len(want), others)
	}

	survivor.Restart(false)
	testcluster.WaitFor(t, 10*time.Second, "the recovered node to lead alone", survivor.Server.IsLeader)
	if got := survivor.Server.FSM().Keys(0); !reflect.DeepEqual(got, want) {
		t.Fatalf("recovered keys differ:\n got %v\nwant %v", got, want)
	}
	v, err := survivor.Client().Do(ctx, "THROTTLE.ACQUIRE", "k3", iv, 5).Int64Slice()
	if err != nil || v[2] != last[2]+iv {
		t.Fatalf("k3 after recovery: %v %v, want slot %d", v, err, last[2]+iv)
	}
	nodes := func() [][]any {
		rows, _ := survivor.Client().Do(ctx, "RAFT.NODES").Slice()
		out := [][]any{}
		for _, r := range rows {
			out = append(out, r.([]any))
		}
		return out
	}
	testcluster.WaitFor(t, 10*time.Second, "the recovered node to correct its Raft address", func() bool {
		rows := nodes()
		return len(rows) == 1 && rows[0][1] == survivor.Server.RaftAddr() && rows[0][2] == survivor.Addr()
	})

	// Fresh nodes join the recovered one and the cluster grants again with
	// three voters, through a new follower.
	n4 := testcluster.StartNode(t, testcluster.Options{ID: "n4", Join: []string{survivor.Addr()}, Configure: withStore})
	n5 := testcluster.StartNode(t, testcluster.Options{ID: "n5", Join: []string{survivor.Addr()}, Configure: withStore})
	testcluster.WaitFor(t, 10*time.Second, "three members", func() bool { return len(nodes()) == 3 })
	for _, n := range []*testcluster.Node{n4, n5} {
		testcluster.WaitFor(t, 10*time.Second, n.ID()+" to catch up", func() bool {
			return len(n.Server.FSM().Keys(0)) == len(want)
		})
	}
	if v2, err := n5.Client().Do(ctx, "THROTTLE.ACQUIRE", "k3", iv, 5).Int64Slice(); err != nil || v2[2] != v[2]+iv {
		t.Fatalf("k3 through a new follower: %v %v, want slot %d", v2, err, v[2]+iv)
	}
	if got := len(survivor.Server.FSM().Nodes()); got != 3 {
		t.Fatalf("%d members recorded, want 3 (the survivor and the two new nodes)", got)
	}
}
