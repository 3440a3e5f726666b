// Package cluster_test tests throttledb clusters of real node processes:
// the binary is built once in TestMain, nodes listen on 127.0.0.1:0 ports
// with data in t.TempDir(), and each process is stopped by its own pid.
package cluster_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/internal/testcluster"
)

var bin string // the throttledb binary under test

// quietLogger silences go-redis's own log lines (dial failures to a killed
// node are expected here and counted by the tests instead).
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	if os.Getenv("THROTTLEDB_TEST_LOG") == "" {
		redis.SetLogger(quietLogger{})
	}
	dir, err := os.MkdirTemp("", "throttledb-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin, err = testcluster.BuildBinary(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// permit is a decoded THROTTLE.ACQUIRE reply.
type permit struct {
	granted                  bool
	waitMs, validAt, expires int64
	pending                  int64
}

func acquire(ctx context.Context, c *redis.Client, key string, interval, max int64) (permit, error) {
	v, err := c.Do(ctx, "THROTTLE.ACQUIRE", key, interval, max).Int64Slice()
	if err != nil {
		return permit{}, err
	}
	if len(v) != 5 {
		return permit{}, fmt.Errorf("reply of %d elements: %v", len(v), v)
	}
	return permit{granted: v[0] == 1, waitMs: v[1], validAt: v[2], expires: v[3], pending: v[4]}, nil
}

// acquirePipeline sends n THROTTLE.ACQUIREs of key in one pipeline (in a
// MULTI/EXEC transaction if tx) and returns each one's permit or error, in
// order.
func acquirePipeline(ctx context.Context, c *redis.Client, key string, interval, max int64, n int, tx bool) ([]permit, []error) {
	pipe := c.Pipeline()
	if tx {
		pipe = c.TxPipeline()
	}
	cmds := make([]*redis.Cmd, n)
	for i := range cmds {
		cmds[i] = pipe.Do(ctx, "THROTTLE.ACQUIRE", key, interval, max)
	}
	_, _ = pipe.Exec(ctx) // each command's error is its own
	ps, errs := make([]permit, n), make([]error, n)
	for i, cmd := range cmds {
		v, err := cmd.Int64Slice()
		if err == nil && len(v) != 5 {
			err = fmt.Errorf("reply of %d elements: %v", len(v), v)
		}
		if errs[i] = err; err == nil {
			ps[i] = permit{granted: v[0] == 1, waitMs: v[1], validAt: v[2], expires: v[3], pending: v[4]}
		}
	}
	return ps, errs
}

// nodeRow is one row of RAFT.NODES.
type nodeRow struct{ id, raftAddr, respAddr, suffrage, role string }

func raftNodes(ctx context.Context, c *redis.Client) ([]nodeRow, error) {
	v, err := c.Do(ctx, "RAFT.NODES").Slice()
	if err != nil {
		return nil, err
	}
	var out []nodeRow
	for _, r := range v {
		f, ok := r.([]any)
		if !ok || len(f) != 5 {
			return nil, fmt.Errorf("bad RAFT.NODES row %v", r)
		}
		s := make([]string, 5)
		for i := range f {
			s[i], _ = f[i].(string)
		}
		out = append(out, nodeRow{s[0], s[1], s[2], s[3], s[4]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out, nil
}

func formatRows(rows []nodeRow) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%s %s %s %s %s; ", r.id, r.raftAddr, r.respAddr, r.suffrage, r.role)
	}
	return b.String()
}

// wantMembers checks that rows list exactly the procs, with their addresses,
// all voters, and leader as the only leader.
func wantMembers(rows []nodeRow, procs []*testcluster.Proc, leader string) error {
	if len(rows) != len(procs) {
		return fmt.Errorf("%d members, want %d: %s", len(rows), len(procs), formatRows(rows))
	}
	byID := map[string]*testcluster.Proc{}
	for _, p := range procs {
		byID[p.ID()] = p
	}
	for _, r := range rows {
		p := byID[r.id]
		if p == nil {
			return fmt.Errorf("unexpected member %s: %s", r.id, formatRows(rows))
		}
		if r.raftAddr != p.RaftAddr() || r.respAddr != p.Addr() || r.suffrage != "voter" {
			return fmt.Errorf("member %s listed as %+v, want raft %s resp %s voter", r.id, r, p.RaftAddr(), p.Addr())
		}
		if (r.role == "leader") != (r.id == leader) {
			return fmt.Errorf("member %s has role %s, leader is %s", r.id, r.role, leader)
		}
	}
	return nil
}

// waitMembers waits until every running node's RAFT.NODES lists exactly
// procs, all voters, with the same leader, and returns that leader's ID.
func waitMembers(t *testing.T, c *testcluster.ProcCluster, procs []*testcluster.Proc) string {
	t.Helper()
	ctx := context.Background()
	var lastErr error
	var leader string
	ok := testcluster.Poll(20*time.Second, func() bool {
		l := c.Leader()
		if l == nil {
			lastErr = fmt.Errorf("no leader agreed on")
			return false
		}
		for _, p := range c.Running() {
			rows, err := raftNodes(ctx, p.Client())
			if err != nil {
				lastErr = fmt.Errorf("%s: RAFT.NODES: %v", p.ID(), err)
				return false
			}
			if err := wantMembers(rows, procs, l.ID()); err != nil {
				lastErr = fmt.Errorf("%s: %v", p.ID(), err)
				return false
			}
		}
		leader = l.ID()
		return true
	})
	if !ok {
		t.Fatalf("membership did not converge: %v", lastErr)
	}
	return leader
}
