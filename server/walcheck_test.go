package server_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
	"github.com/throttledb/throttledb/server"
)

// servedWALDir is servedDataDir with the wal log store: a node that served
// writes (one entry, and so one write batch, each), took a snapshot, served
// more, and was closed. It returns the data directory and the tail
// segment's path.
func servedWALDir(t *testing.T) (dir, seg, lastIndex string) {
	t.Helper()
	n := testcluster.StartNode(t, testcluster.Options{Configure: func(c *server.Config) { c.LogStore = server.LogStoreWAL }})
	c := n.Client()
	ctx := context.Background()
	write := func(from, to int) {
		for i := from; i < to; i++ {
			if err := c.Do(ctx, "THROTTLE.ACQUIRE", fmt.Sprintf("key-%d", i%50), 3_600_000, 100).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(0, 50)
	if err := c.Do(ctx, "RAFT.SNAPSHOT").Err(); err != nil {
		t.Fatal(err)
	}
	write(50, 120)
	last := n.Client().Info(ctx, "raft").Val()
	n.Stop()
	segs, err := filepath.Glob(filepath.Join(n.DataDir(), "wal", "*.wal"))
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %v: %v, want one", segs, err)
	}
	return n.DataDir(), segs[0], infoField(t, last, "raft_last_log_index")
}

// infoField returns the value of field in an INFO reply.
func infoField(t *testing.T, info, field string) string {
	t.Helper()
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v
		}
	}
	t.Fatalf("no %s in INFO:\n%s", field, info)
	return ""
}

// walEntryFrames returns the offsets of a segment's entry frames, walking
// raft-wal's format (32-byte header; 8-byte frame headers, type in the first
// byte, payload length in the last four; payloads padded to 8 bytes).
func walEntryFrames(t *testing.T, b []byte) []int {
	t.Helper()
	var offs []int
	for off := 32; off+8 <= len(b) && b[off] != 0; {
		switch b[off] {
		case 1, 2: // entry, index
			if b[off] == 1 {
				offs = append(offs, off)
			}
			n := int(binary.LittleEndian.Uint32(b[off+4:]))
			off += 8 + (n+7)&^7
		case 3: // commit
			off += 8
		default:
			t.Fatalf("unexpected frame type %d at %d", b[off], off)
		}
	}
	if len(offs) < 100 {
		t.Fatalf("%d entry frames, want the served writes", len(offs))
	}
	return offs
}

// TestDamagedWALIsNotServed damages copies of a wal data directory. raft-wal
// alone (v0.4.0; v0.4.2 reads segments the same way) opens each of the
// damaged ones and serves what it finds: a changed byte inside an earlier
// batch as it is, and a garbled frame header or a cut tail segment as if
// the log ended there, dropping acknowledged entries. With the checks Start returns ErrDataCorrupt naming
// the file, and Recover refuses it too. A torn last write (bytes after the
// last complete batch, as a crash during a write leaves) is not damage: the
// node serves every acknowledged entry.
func TestDamagedWALIsNotServed(t *testing.T) {
	good, goodSeg, lastIndex := servedWALDir(t)
	segName := filepath.Base(goodSeg)
	damageSegment := func(f func(t *testing.T, b []byte, frames []int) []byte) func(t *testing.T, dir string) string {
		return func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "wal", segName)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, f(t, b, walEntryFrames(t, b)), 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}
	}
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string) string
	}{
		{"a byte of an early entry changed", damageSegment(func(t *testing.T, b []byte, frames []int) []byte {
			b[frames[10]+8+4] ^= 0x40
			return b
		})},
		{"an early frame header garbled", damageSegment(func(t *testing.T, b []byte, frames []int) []byte {
			b[frames[10]] = 0x77
			return b
		})},
		{"an early entry's length changed", damageSegment(func(t *testing.T, b []byte, frames []int) []byte {
			binary.LittleEndian.PutUint32(b[frames[10]+4:], 4)
			return b
		})},
		{"the tail segment cut in the middle of its data", damageSegment(func(t *testing.T, b []byte, frames []int) []byte {
			return b[:frames[len(frames)/2]+3]
		})},
		{"the tail segment cut after its data", damageSegment(func(t *testing.T, b []byte, frames []int) []byte {
			return b[:frames[len(frames)-1]+4096]
		})},
		{"wal-meta.db cut to half", func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "wal", "wal-meta.db")
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, st.Size()/2); err != nil {
				t.Fatal(err)
			}
			return path
		}},
		{"the tail segment missing its header", damageSegment(func(t *testing.T, b []byte, frames []int) []byte {
			copy(b, make([]byte, 32))
			return b
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDir(t, good)
			refusesDamage(t, dir, tt.damage(t, dir))
		})
	}

	serves := []struct {
		name   string
		damage func(t *testing.T, dir string) string
	}{
		{"undamaged", func(t *testing.T, dir string) string { return "" }},
		{"a torn last write", damageSegment(func(t *testing.T, b []byte, frames []int) []byte {
			// An entry frame header and half its payload after the last
			// commit: what a crash in the middle of a write leaves.
			end := frames[len(frames)-1]
			for b[end] != 3 {
				end += 8 + (int(binary.LittleEndian.Uint32(b[end+4:]))+7)&^7
			}
			end += 8
			copy(b[end:], []byte{1, 0, 0, 0, 40, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9, 9})
			return b
		})},
	}
	for _, tt := range serves {
		t.Run(tt.name+" serves", func(t *testing.T) {
			dir := copyDir(t, good)
			tt.damage(t, dir)
			n := testcluster.StartNode(t, testcluster.Options{DataDir: dir})
			testcluster.WaitFor(t, 10*time.Second, "the copy to lead", n.Server.IsLeader)
			if got := n.Server.FSM().DBSize(0); got != 50 {
				t.Fatalf("%d keys, want 50", got)
			}
			// Every entry was kept: the log still reaches the last index
			// written before the node stopped.
			info := n.Client().Info(context.Background(), "raft").Val()
			if got := infoField(t, info, "raft_last_log_index"); len(got) < len(lastIndex) || (len(got) == len(lastIndex) && got < lastIndex) {
				t.Fatalf("last log index %s after restart, %s before", got, lastIndex)
			}
		})
	}
}

// TestLogStoreMismatch checks that a data directory remembers its log
// store: opening it with the other one is ErrLogStoreMismatch naming both,
// and opening it without saying uses the one it holds.
func TestLogStoreMismatch(t *testing.T) {
	for _, tt := range []struct{ created, other string }{
		{server.LogStoreBolt, server.LogStoreWAL},
		{server.LogStoreWAL, server.LogStoreBolt},
	} {
		t.Run(tt.created, func(t *testing.T) {
			n := testcluster.StartNode(t, testcluster.Options{Configure: func(c *server.Config) { c.LogStore = tt.created }})
			// An hour's interval, so the key outlives the restart in
			// cluster time: the restarted leader stamps its clock into its
			// first entries, and a restart can take longer than a short
			// interval (a wal start reads every segment; slower under
			// -race), which would expire the key and look like a lost entry.
			if err := n.Client().Do(context.Background(), "THROTTLE.ACQUIRE", "k", 3_600_000, 5).Err(); err != nil {
				t.Fatal(err)
			}
			n.Stop()
			cfg := server.Config{ID: "n1", Addr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", DataDir: n.DataDir(),
				Logger: testcluster.Logger("mismatch"), LogStore: tt.other}
			s, err := server.Start(context.Background(), cfg)
			if err == nil {
				s.Close()
				t.Fatalf("a %s data directory started with --log-store %s", tt.created, tt.other)
			}
			if !errors.Is(err, server.ErrLogStoreMismatch) || !strings.Contains(err.Error(), tt.created) || !strings.Contains(err.Error(), tt.other) {
				t.Fatalf("Start: %v\nwant ErrLogStoreMismatch naming %s and %s", err, tt.created, tt.other)
			}
			t.Logf("%v", err)
			_, err = server.Recover(server.RecoverConfig{ID: "n1", DataDir: n.DataDir(), RaftAddr: "127.0.0.1:1",
				Logger: testcluster.Logger("recover"), LogStore: tt.other})
			if !errors.Is(err, server.ErrLogStoreMismatch) {
				t.Fatalf("Recover: %v, want ErrLogStoreMismatch", err)
			}
			// Unset, the store is the one the directory holds.
			m := testcluster.StartNode(t, testcluster.Options{DataDir: n.DataDir()})
			// The entry is in the log, not in a snapshot: it is applied
			// once the new leader commits it again: the grant is counted
			// again, and the key is live.
			testcluster.WaitFor(t, 10*time.Second, "the node to apply its log", func() bool {
				return m.Server.FSM().Stats().Grants == 1 && m.Server.FSM().DBSize(0) == 1
			})
			if info := m.Client().Info(context.Background(), "raft").Val(); !strings.Contains(info, "raft_log_store:"+tt.created+"\r\n") {
				t.Fatalf("INFO raft does not say raft_log_store:%s:\n%s", tt.created, info)
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		_, err := server.Start(context.Background(), server.Config{Addr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0",
			DataDir: t.TempDir(), Logger: testcluster.Logger("unknown"), LogStore: "rocks"})
		if !errors.Is(err, server.ErrUnknownLogStore) {
			t.Fatalf("Start: %v, want ErrUnknownLogStore", err)
		}
	})
}
