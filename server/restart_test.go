package server_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
	"github.com/throttledb/throttledb/server"
)

// TestRestartFromSnapshotAndLogTail takes a snapshot, writes a log tail after
// it, restarts the node and checks that the state is exactly what it was and
// that reservations granted before the restart are still respected, with
// each log store.
func TestRestartFromSnapshotAndLogTail(t *testing.T) {
	for _, store := range []string{server.LogStoreBolt, server.LogStoreWAL} {
		t.Run(store, func(t *testing.T) { testRestartFromSnapshotAndLogTail(t, store) })
	}
}

func testRestartFromSnapshotAndLogTail(t *testing.T, store string) {
	n := testcluster.StartNode(t, testcluster.Options{TrailingLogs: 2,
		Configure: func(c *server.Config) { c.LogStore = store }})
	c := n.Client()
	ctx := context.Background()
	acquire := func(key string) []int64 {
		t.Helper()
		v, err := c.Do(ctx, "THROTTLE.ACQUIRE", key, 60000, 100).Int64Slice()
		if err != nil || v[0] != 1 {
			t.Fatalf("acquire %s: %v %v", key, v, err)
		}
		return v
	}
	for i := 0; i < 40; i++ {
		acquire(fmt.Sprintf("k%d", i%8))
	}
	if err := c.Do(ctx, "RAFT.SNAPSHOT").Err(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Info(ctx, "raft").Val(), "raft_last_snapshot_index:") ||
		strings.Contains(c.Info(ctx, "raft").Val(), "raft_last_snapshot_index:0\r\n") {
		t.Fatalf("no snapshot taken:\n%s", c.Info(ctx, "raft").Val())
	}
	// The log tail: entries after the snapshot, including a new key.
	for i := 0; i < 10; i++ {
		acquire(fmt.Sprintf("k%d", i%3))
	}
	last := acquire("tail-only")
	before := n.Server.FSM().Keys(0)

	n.Restart(false)
	testcluster.WaitFor(t, 10*time.Second, "restarted node to lead", n.Server.IsLeader)
	after := n.Server.FSM().Keys(0)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("state differs after restart:\nbefore %v\nafter  %v", before, after)
	}
	// Reservations survive: the next slot of tail-only follows the old one.
	c = n.Client()
	v, err := c.Do(ctx, "THROTTLE.ACQUIRE", "tail-only", 60000, 100).Int64Slice()
	if err != nil || v[2] != last[2]+60000 {
		t.Fatalf("after restart: %v %v, want slot %d", v, err, last[2]+60000)
	}
}

// TestDataDirInUse checks that a second node on a data directory already in
// use fails fast with ErrDataDirInUse instead of hanging on the file lock.
func TestDataDirInUse(t *testing.T) {
	for _, store := range []string{server.LogStoreBolt, server.LogStoreWAL} {
		t.Run(store, func(t *testing.T) {
			n := testcluster.StartNode(t, testcluster.Options{Configure: func(c *server.Config) { c.LogStore = store }})
			_, err := server.Start(context.Background(), server.Config{
				Addr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", DataDir: n.DataDir(),
				Logger: testcluster.Logger("second"),
			})
			if !errors.Is(err, server.ErrDataDirInUse) {
				t.Fatalf("second start on %s: %v, want ErrDataDirInUse", n.DataDir(), err)
			}
		})
	}
}

// TestAdvertiseAddresses checks that a node bound to all interfaces needs
// advertised addresses, and that the advertised ones are what the cluster
// records.
func TestAdvertiseAddresses(t *testing.T) {
	base := server.Config{Addr: "0.0.0.0:0", RaftAddr: "127.0.0.1:0", DataDir: t.TempDir(), Logger: testcluster.Logger("adv")}
	if _, err := server.Start(context.Background(), base); err == nil || !strings.Contains(err.Error(), "--advertise-addr") {
		t.Fatalf("wildcard RESP address without --advertise-addr: %v", err)
	}
	raftWild := base
	raftWild.Addr, raftWild.RaftAddr = "127.0.0.1:0", "0.0.0.0:0"
	if _, err := server.Start(context.Background(), raftWild); err == nil || !strings.Contains(err.Error(), "--raft-advertise") {
		t.Fatalf("wildcard Raft address without --raft-advertise: %v", err)
	}
	ok := base
	ok.AdvertiseAddr = "127.0.0.1:16380" // a name for peers; not dialled in this test
	s, err := server.Start(context.Background(), ok)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	testcluster.WaitFor(t, 10*time.Second, "leader", s.IsLeader)
	testcluster.WaitFor(t, 10*time.Second, "advertised address recorded", func() bool {
		addr, found := s.FSM().NodeAddr(s.ID())
		return found && addr == "127.0.0.1:16380"
	})
}
