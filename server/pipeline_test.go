package server_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/internal/testcluster"
	"github.com/throttledb/throttledb/server"
)

// sendPipeline sends cmds in one pipeline on one connection.
func sendPipeline(c *redis.Client, cmds [][]any) []*redis.Cmd {
	ctx := context.Background()
	pipe := c.Pipeline()
	out := make([]*redis.Cmd, len(cmds))
	for i, args := range cmds {
		out[i] = pipe.Do(ctx, args...)
	}
	_, _ = pipe.Exec(ctx) // each command's error is its own
	return out
}

// pipelineReplies returns each reply of a pipeline as text: its value, or
// "error: " and the error.
func pipelineReplies(c *redis.Client, cmds [][]any) []string {
	var replies []string
	for _, cmd := range sendPipeline(c, cmds) {
		if err := cmd.Err(); err != nil {
			replies = append(replies, "error: "+err.Error())
		} else {
			replies = append(replies, fmt.Sprint(cmd.Val()))
		}
	}
	return replies
}

// permits returns each reply of a pipeline as a permit's integers, or nil
// for an error.
func permits(c *redis.Client, cmds [][]any) [][]int64 {
	var res [][]int64
	for _, cmd := range sendPipeline(c, cmds) {
		v, _ := cmd.Int64Slice()
		res = append(res, v)
	}
	return res
}

// relative rewrites permit replies [granted wait valid_at expires_at
// pending] so that replies from runs at different moments compare: times
// relative to the first slot, wait_ms (which depends on when a command
// ran) zeroed.
func relative(rs [][]int64) [][]int64 {
	var base int64
	out := make([][]int64, len(rs))
	for i, r := range rs {
		if r == nil {
			continue
		}
		v := append([]int64(nil), r...)
		if v[0] == 1 {
			if base == 0 {
				base = v[2]
			}
			v[2] -= base
			v[3] -= base
		}
		v[1] = 0
		out[i] = v
	}
	return out
}

// TestPipelinedAcquiresAnswerAsOneByOne: a pipeline of THROTTLE.ACQUIREs on
// one connection, to the leader or to a follower, is served together by the
// node that received it (queued at once to the leader's proposer or the
// follower's forwarder), so that its commands share log entries,
// and gets exactly the replies the same commands get one at a time, in
// order: the first goes now, the next max are reserved one interval apart,
// the rest are denied; bad commands in the middle get their error in their
// place and change nothing.
func TestPipelinedAcquiresAnswerAsOneByOne(t *testing.T) {
	cl := testcluster.Start(t, 3, testcluster.Options{})
	leader := cl.WaitForLeader(10 * time.Second)
	const iv, max = 60_000, 5
	seq := func(key string) [][]any {
		var cmds [][]any
		for i := 0; i < 12; i++ {
			switch i {
			case 3:
				cmds = append(cmds, []any{"THROTTLE.ACQUIRE", key, "x", max}) // not an integer
			case 7:
				cmds = append(cmds, []any{"THROTTLE.ACQUIRE", key, iv}) // wrong arity
			default:
				cmds = append(cmds, []any{"THROTTLE.ACQUIRE", key, iv, max})
			}
		}
		return cmds
	}
	for _, n := range []*testcluster.Node{leader, cl.Followers()[0]} {
		name := "leader"
		if n != leader {
			name = "follower"
		}
		t.Run(name, func(t *testing.T) {
			c := n.Client()
			before := server.PipelinedTotal(n.Server)
			piped := relative(permits(c, seq(name+"-piped")))
			// All 12 normally arrive in one read; a read split by the
			// network would serve the rest as a shorter pipeline, never
			// none of them.
			if got := server.PipelinedTotal(n.Server) - before; got < 2 {
				t.Fatalf("the %s served %d commands as a pipeline, want (nearly) all 12", name, got)
			}
			var one [][]int64
			for _, cmd := range seq(name + "-one-by-one") {
				one = append(one, permits(c, [][]any{cmd})[0])
			}
			if oneByOne := relative(one); !reflect.DeepEqual(piped, oneByOne) {
				t.Fatalf("pipelined replies differ from one-at-a-time replies:\npiped      %v\none by one %v", piped, oneByOne)
			}
			// Spelled out: now, 5 reservations one interval apart, then
			// denials.
			granted := 0
			for i, r := range piped {
				if r != nil && r[0] == 1 {
					if r[2] != int64(granted)*iv || r[4] != int64(granted) {
						t.Errorf("reply %d: %v, want slot +%d and pending %d", i, r, granted*iv, granted)
					}
					granted++
				}
			}
			if granted != max+1 {
				t.Errorf("%d grants, want %d", granted, max+1)
			}
			errs := pipelineReplies(c, seq(name + "-errors")[3:8])
			if errs[0] != "error: ERR value is not an integer or out of range" ||
				errs[4] != "error: ERR wrong number of arguments for 'throttle.acquire' command" {
				t.Errorf("errors in a pipeline: %q", errs)
			}
		})
	}
}

// TestPipelinesServedOneByOne: pipelines that are not served together
// (mixed commands, on the leader or through a follower, and before AUTH)
// are still answered in order, each command as it would be alone.
func TestPipelinesServedOneByOne(t *testing.T) {
	ctx := context.Background()
	c := testcluster.Start(t, 3, testcluster.Options{RequirePass: "pw"})
	leader := c.WaitForLeader(10 * time.Second)
	follower := c.Followers()[0]
	for _, tc := range []struct {
		name string
		cl   *redis.Client
		cmds [][]any
		want []string
	}{
		{"mixed", leader.Client(), [][]any{
			{"THROTTLE.ACQUIRE", "mixed", 60000, 1}, {"PING"}, {"THROTTLE.PEEK", "mixed", 60000, 1}, {"THROTTLE.ACQUIRE", "mixed", 60000, 1},
		}, []string{"granted", "PONG", "granted", "granted"}},
		{"mixed, through a follower", follower.Client(), [][]any{
			{"THROTTLE.ACQUIRE", "fwd", 60000, 1}, {"PING"}, {"THROTTLE.ACQUIRE", "fwd", 60000, 1}, {"THROTTLE.ACQUIRE", "fwd", 60000, 1},
		}, []string{"granted", "PONG", "granted", "denied"}},
		{"before AUTH", redis.NewClient(&redis.Options{Addr: leader.Addr(), MaxRetries: -1}), [][]any{
			{"THROTTLE.ACQUIRE", "noauth", 60000, 1}, {"THROTTLE.ACQUIRE", "noauth", 60000, 1},
		}, []string{"error: NOAUTH Authentication required.", "error: NOAUTH Authentication required."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := pipelineReplies(tc.cl, tc.cmds)
			for i := range got {
				switch {
				case tc.want[i] == "granted" && len(got[i]) > 2 && got[i][:3] == "[1 ":
				case tc.want[i] == "denied" && len(got[i]) > 2 && got[i][:3] == "[0 ":
				case got[i] == tc.want[i]:
				default:
					t.Errorf("reply %d: %q, want %s", i, got[i], tc.want[i])
				}
			}
		})
	}
	if v, err := leader.Client().Do(ctx, "DBSIZE").Int(); err != nil || v != 2 {
		t.Errorf("DBSIZE %d, %v; want 2 (mixed, fwd): nothing from the refused pipeline", v, err)
	}
}
