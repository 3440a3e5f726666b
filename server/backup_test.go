package server_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
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

// backupImage encodes a backup image by hand, in the documented snapshot
// format (fsm/snapshot.go), so that a test can send what no correct node
// would write: magic, version, clock, three counters, keys (key, last
// slot, interval) and members (ID, RESP address).
func backupImage(now int64, keys [][3]any, nodes [][2]string) []byte {
	str := func(b []byte, s string) []byte { return append(binary.AppendUvarint(b, uint64(len(s))), s...) }
	b := append([]byte("TDBSNAP"), 1)
	for _, v := range []int64{now, 0, 0, 0} {
		b = binary.AppendVarint(b, v)
	}
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = str(b, k[0].(string))
		b = binary.AppendVarint(b, k[1].(int64))
		b = binary.AppendVarint(b, k[2].(int64))
	}
	b = binary.AppendUvarint(b, uint64(len(nodes)))
	for _, n := range nodes {
		b = str(str(b, n[0]), n[1])
	}
	return b
}

// TestRestoreRefusesInvalidImages sends RAFT.RESTORE images that decode but
// hold impossible state. Each is refused with "ERR invalid backup: ..."
// saying what is wrong (naming the key), nothing changes, and the node
// keeps granting. The first is the reproducer: an image whose
// clock was near 2^63 made every later ACQUIRE fail with an overflow error,
// for good.
func TestRestoreRefusesInvalidImages(t *testing.T) {
	ctx := context.Background()
	n := testcluster.StartNode(t, testcluster.Options{})
	testcluster.WaitFor(t, 10*time.Second, "leader", n.Server.IsLeader)
	c := n.Client()
	if err := c.Do(ctx, "THROTTLE.ACQUIRE", "existing", 3_600_000, 5).Err(); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	member := [][2]string{{"n1", "127.0.0.1:6380"}}
	for _, tc := range []struct {
		name string
		img  []byte
		want string
	}{
		{"clock near 2^63", backupImage(math.MaxInt64-1000, [][3]any{{"k", int64(math.MaxInt64 - 2000), int64(10)}}, member),
			"ERR invalid backup: clock 9223372036854774807 is outside 0..253402300799999"},
		{"clock two days ahead", backupImage(now+2*86_400_000, nil, member),
			"ERR invalid backup: clock "},
		{"negative clock", backupImage(-5, nil, member), "ERR invalid backup: clock -5 is outside"},
		{"negative interval", backupImage(now, [][3]any{{"ok", now, int64(10)}, {"neg", now, int64(-10)}}, member),
			`ERR invalid backup: key "neg": interval -10 is less than 1`},
		{"duplicate key", backupImage(now, [][3]any{{"dup", now, int64(10)}, {"dup", now + 10, int64(10)}}, member),
			`ERR invalid backup: key "dup" appears twice`},
		{"slot overflow", backupImage(now, [][3]any{{"big", int64(math.MaxInt64 - 5), int64(10)}}, member),
			`ERR invalid backup: key "big": last slot 9223372036854775802 plus interval 10 overflows int64`},
		{"member address", backupImage(now, nil, [][2]string{{"n1", "no-port"}}),
			`ERR invalid backup: member "n1": invalid member: address "no-port"`},
		{"duplicate member", backupImage(now, nil, [][2]string{{"n1", "h:1"}, {"n1", "h:2"}}),
			`ERR invalid backup: member "n1" appears twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Do(ctx, "RAFT.RESTORE", tc.img).Err()
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error starting %q", err, tc.want)
			}
		})
	}
	keys := n.Server.FSM().Keys(0)
	if _, ok := keys["existing"]; !ok || len(keys) != 1 {
		t.Fatalf("a refused restore changed the state: %v", keys)
	}
	if c := n.Server.FSM().Clock(0); c > time.Now().UnixMilli()+60_000 {
		t.Fatalf("a refused restore moved the clock to %d", c)
	}
	v, err := c.Do(ctx, "THROTTLE.ACQUIRE", "after", 1000, 1).Int64Slice()
	if err != nil || v[0] != 1 {
		t.Fatalf("ACQUIRE after refused restores: %v %v", v, err)
	}

	// A valid hand-made image, with a clock a little ahead, is accepted.
	ok := backupImage(now+60_000, [][3]any{{"restored", now + 60_000, int64(3_600_000)}}, member)
	if n, err := c.Do(ctx, "RAFT.RESTORE", ok).Int64(); err != nil || n != 1 {
		t.Fatalf("valid image: %v %v", n, err)
	}
	v, err = c.Do(ctx, "THROTTLE.ACQUIRE", "restored", 3_600_000, 1).Int64Slice()
	if err != nil || v[0] != 1 || v[2] != now+60_000+3_600_000 {
		t.Fatalf("ACQUIRE after a valid restore: %v %v", v, err)
	}
}
