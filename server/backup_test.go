package server_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
)

// TestBackupRestoreIntoAnotherCluster backs up one cluster through a
// follower and restores the image into a second cluster, also through a
// follower: the second cluster then holds exactly the first one's keys,
// keeps its own membership, never moves its clock backwards, and continues
// every key's reservations where the first left off.
func TestBackupRestoreIntoAnotherCluster(t *testing.T) {
	ctx := context.Background()
	const iv = 3_600_000 // an hour: nothing expires during the test

	a := testcluster.Start(t, 3, testcluster.Options{})
	aLeader := a.WaitForLeader(10 * time.Second)
	af := a.Followers()[0].Client()
	for i := 0; i < 20; i++ {
		if err := af.Do(ctx, "THROTTLE.ACQUIRE", fmt.Sprintf("k%d", i%7), iv, 5).Err(); err != nil {
			t.Fatal(err)
		}
	}
	last, err := af.Do(ctx, "THROTTLE.ACQUIRE", "chain", iv, 5).Int64Slice()
	if err != nil {
		t.Fatal(err)
	}
	img, err := af.Do(ctx, "RAFT.BACKUP").Text()
	if err != nil {
		t.Fatal(err)
	}
	want := aLeader.Server.FSM().Keys(0)

	b := testcluster.Start(t, 3, testcluster.Options{})
	bLeader := b.WaitForLeader(10 * time.Second)
	bf := b.Followers()[0].Client()
	if err := bf.Do(ctx, "THROTTLE.ACQUIRE", "b-only", iv, 5).Err(); err != nil {
		t.Fatal(err)
	}
	clockBefore := bLeader.Server.FSM().Clock(0)

	t.Run("bad input changes nothing", func(t *testing.T) {
		newer := []byte(img)
		newer[len("TDBSNAP")] = 99 // an image version this build does not know
		for _, tc := range []struct {
			name string
			args []any
			want string
		}{
			{"garbage", []any{"RAFT.RESTORE", "not a backup"}, "ERR invalid backup: "},
			{"truncated", []any{"RAFT.RESTORE", img[:len(img)/2]}, "ERR invalid backup: "},
			{"newer version", []any{"RAFT.RESTORE", newer}, "ERR invalid backup: "},
			{"restore arity", []any{"RAFT.RESTORE"}, "ERR wrong number of arguments for 'raft.restore' command"},
			{"backup arity", []any{"raft.backup", "x"}, "ERR wrong number of arguments for 'raft.backup' command"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := bf.Do(ctx, tc.args...).Err()
				if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
					t.Fatalf("got %v, want an error starting %q", err, tc.want)
				}
			})
		}
		if got := bLeader.Server.FSM().Keys(0); len(got) != 1 {
			t.Fatalf("a refused restore changed the state: %v", got)
		}
	})

	n, err := bf.Do(ctx, "RAFT.RESTORE", img).Int64()
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(want)) {
		t.Fatalf("RAFT.RESTORE replied %d keys, want %d", n, len(want))
	}
	for _, node := range b.Nodes {
		testcluster.WaitFor(t, 10*time.Second, node.ID()+" to hold the restored keys", func() bool {
			return reflect.DeepEqual(node.Server.FSM().Keys(0), want)
		})
		if c := node.Server.FSM().Clock(0); c < clockBefore {
			t.Errorf("%s: cluster clock went back from %d to %d", node.ID(), clockBefore, c)
		}
		// Membership is this cluster's, not the backup's.
		if addr, ok := node.Server.FSM().NodeAddr(node.ID()); !ok || addr != node.Addr() {
			t.Errorf("%s: recorded RESP address %q, want %q", node.ID(), addr, node.Addr())
		}
		if got := len(node.Server.FSM().Nodes()); got != 3 {
			t.Errorf("%s: %d members recorded, want 3", node.ID(), got)
		}
	}

	// Reservations continue: the next slot of "chain" is one interval after
	// the last one granted by the first cluster, and forwarding through a
	// follower still reaches this cluster's leader.
	for _, node := range b.Nodes {
		v, err := node.Client().Do(ctx, "THROTTLE.ACQUIRE", "chain", iv, 5).Int64Slice()
		if err != nil {
			t.Fatalf("%s: %v", node.ID(), err)
		}
		if v[2] != last[2]+iv {
			t.Fatalf("%s: slot %d after restore, want %d", node.ID(), v[2], last[2]+iv)
		}
		last = v
	}

	// The restored state is durable: every node, restarted (the leader
	// too), comes back with it.
	want = bLeader.Server.FSM().Keys(0)
	for _, node := range b.Nodes {
		node.Restart(true)
	}
	b.WaitForLeader(10 * time.Second)
	for _, node := range b.Nodes {
		testcluster.WaitFor(t, 10*time.Second, node.ID()+" to hold the restored keys after a restart", func() bool {
			return reflect.DeepEqual(node.Server.FSM().Keys(0), want)
		})
	}
}
