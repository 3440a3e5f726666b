package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/internal/testcluster"
)

// TestTransactions: MULTI ... EXEC applies its THROTTLE.ACQUIREs and
// THROTTLE.RESETs together, in one log entry, on the leader or through a
// follower, and replies with their replies in order; refused commands
// discard the whole transaction (EXECABORT), as in Redis; bad arguments
// found at EXEC fail only their own command.
func TestTransactions(t *testing.T) {
	ctx := context.Background()
	cl := testcluster.Start(t, 3, testcluster.Options{})
	leader := cl.WaitForLeader(10 * time.Second)
	const iv = 60_000

	for _, n := range []*testcluster.Node{leader, cl.Followers()[0]} {
		name := map[bool]string{true: "leader", false: "follower"}[n == leader]
		t.Run(name, func(t *testing.T) {
			c := n.Client()
			key := name + "-tx"
			// go-redis's TxPipelined sends MULTI, the commands and EXEC.
			var acq []*redis.Cmd
			var reset *redis.Cmd
			_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
				for range 3 {
					acq = append(acq, p.Do(ctx, "THROTTLE.ACQUIRE", key, iv, 1))
				}
				reset = p.Do(ctx, "THROTTLE.RESET", "no-such-key")
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			v0, _ := acq[0].Int64Slice()
			v1, _ := acq[1].Int64Slice()
			v2, _ := acq[2].Int64Slice()
			if v0[0] != 1 || v0[1] != 0 || v1[0] != 1 || v1[2] != v0[2]+iv || v2[0] != 0 {
				t.Fatalf("replies %v %v %v: want now, one interval later, denied", v0, v1, v2)
			}
			if n, err := reset.Int64(); err != nil || n != 0 {
				t.Fatalf("RESET in a transaction: %d, %v", n, err)
			}
		})
	}

	t.Run("one entry, one cluster time", func(t *testing.T) {
		c := leader.Client()
		// Nothing else writes to this cluster now, so the transaction
		// should take exactly one log entry; a background write (a late
		// membership record) could add one, so a few tries are allowed.
		var entries int64
		for try := 0; try < 3 && entries != 1; try++ {
			before := commitIndex(t, c)
			cmds, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
				for i := range 20 {
					p.Do(ctx, "THROTTLE.ACQUIRE", fmt.Sprintf("one-entry-%d-%d", try, i), iv, 1)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			entries = commitIndex(t, c) - before
			slot, _ := cmds[1].(*redis.Cmd).Int64Slice()
			for i, cmd := range cmds[1 : len(cmds)-1] { // MULTI and EXEC around them
				v, err := cmd.(*redis.Cmd).Int64Slice()
				if err != nil || v[0] != 1 || v[1] != 0 || v[2] != slot[2] {
					t.Fatalf("command %d: %v, %v; want granted now at the transaction's one time %d", i, v, err, slot[2])
				}
			}
		}
		if entries != 1 {
			t.Fatalf("a transaction of 20 commands took %d log entries, want 1", entries)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			cmds [][]any
			want []string
		}{
			{"refused while queueing: EXECABORT", [][]any{
				{"MULTI"}, {"THROTTLE.ACQUIRE", "abort", iv, 1}, {"THROTTLE.PEEK", "abort", iv, 1}, {"EXEC"},
			}, []string{"OK", "QUEUED", "ERR command 'throttle.peek' is not allowed in a transaction: only THROTTLE.ACQUIRE and THROTTLE.RESET can be queued",
				"EXECABORT Transaction discarded because of previous errors."}},
			{"unknown command: EXECABORT", [][]any{
				{"MULTI"}, {"THROTTLE.ACQUIRE", "abort", iv, 1}, {"NOPE"}, {"EXEC"},
			}, []string{"OK", "QUEUED", "ERR unknown command 'NOPE', with args beginning with: ",
				"EXECABORT Transaction discarded because of previous errors."}},
			{"wrong arity: EXECABORT", [][]any{
				{"MULTI"}, {"THROTTLE.ACQUIRE", "abort"}, {"EXEC"},
			}, []string{"OK", "ERR wrong number of arguments for 'throttle.acquire' command",
				"EXECABORT Transaction discarded because of previous errors."}},
			{"bad value: fails alone at EXEC", [][]any{
				{"MULTI"}, {"THROTTLE.ACQUIRE", "bad-value", "x", 1}, {"THROTTLE.ACQUIRE", "bad-value", iv, 1}, {"EXEC"},
			}, []string{"OK", "QUEUED", "QUEUED", "[ERR value is not an integer or out of range, granted]"}},
			{"discard", [][]any{
				{"MULTI"}, {"THROTTLE.ACQUIRE", "abort", iv, 1}, {"DISCARD"}, {"EXEC"}, {"DISCARD"},
			}, []string{"OK", "QUEUED", "OK", "ERR EXEC without MULTI", "ERR DISCARD without MULTI"}},
			{"nested and empty", [][]any{
				{"MULTI"}, {"MULTI"}, {"EXEC"},
			}, []string{"OK", "ERR MULTI calls can not be nested", "[]"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got := txReplies(leader.Client(), tc.cmds)
				if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
					t.Fatalf("replies:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
				}
			})
		}
		// Nothing of the aborted transactions was applied.
		if v, err := leader.Client().Do(ctx, "THROTTLE.PEEK", "abort", iv, 1).Int64Slice(); err != nil || v[1] != 0 || v[4] != 0 {
			t.Fatalf("key of aborted transactions: %v, %v; want untouched", v, err)
		}
	})
}

// txReplies sends cmds, one at a time, on one connection and returns each
// reply as text; an EXEC array is shown as [elements], a permit as
// "granted" or "denied".
func txReplies(c *redis.Client, cmds [][]any) []string {
	ctx := context.Background()
	conn := c.Conn()
	defer conn.Close()
	var out []string
	for _, args := range cmds {
		v, err := conn.Do(ctx, args...).Result()
		switch {
		case err != nil:
			out = append(out, err.Error())
		case fmt.Sprint(v) == "[]":
			out = append(out, "[]")
		default:
			if arr, ok := v.([]any); ok {
				var parts []string
				for _, e := range arr {
					switch e := e.(type) {
					case error:
						parts = append(parts, e.Error())
					case []any:
						parts = append(parts, map[bool]string{true: "granted", false: "denied"}[e[0].(int64) == 1])
					default:
						parts = append(parts, fmt.Sprint(e))
					}
				}
				out = append(out, "["+strings.Join(parts, ", ")+"]")
			} else {
				out = append(out, fmt.Sprint(v))
			}
		}
	}
	return out
}

// commitIndex returns the node's raft_commit_index from INFO raft.
func commitIndex(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	info := testcluster.ParseInfo(c.Info(context.Background(), "raft").Val())
	var n int64
	if _, err := fmt.Sscan(info["raft_commit_index"], &n); err != nil {
		t.Fatalf("raft_commit_index %q: %v", info["raft_commit_index"], err)
	}
	return n
}
