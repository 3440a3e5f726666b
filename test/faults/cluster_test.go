package faults_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/internal/faultproxy"
	"github.com/throttledb/throttledb/internal/testcluster"
)

// link is the pair of proxies carrying what one node initiates towards
// another: its Raft RPCs and its forwarded commands.
type link struct{ raft, resp *faultproxy.Link }

// pair is a directed link, from → to.
type pair struct{ from, to string }

// cluster is three throttledb processes whose node-to-node traffic passes
// through a proxy per directed pair (the nodes dial each other through
// --debug-peer-raft-addrs and --debug-peer-resp-addrs). Clients reach the
// nodes directly.
type cluster struct {
	t       *testing.T
	store   string // --log-store of every node
	ids     []string
	links   map[pair]*link
	offsets map[string]time.Duration // --debug-clock-offset per node

	mu      sync.Mutex
	procs   map[string]*testcluster.Proc
	history map[string][]*testcluster.Proc // every process each ID ran as
	stopped map[string]bool                // SIGSTOPped
	clients map[string]*redis.Client       // by address
}

func startCluster(t *testing.T, store string, ids []string, offsets map[string]time.Duration) *cluster {
	t.Helper()
	c := &cluster{
		t: t, store: store, ids: ids, links: map[pair]*link{}, offsets: offsets,
		procs: map[string]*testcluster.Proc{}, history: map[string][]*testcluster.Proc{},
		stopped: map[string]bool{}, clients: map[string]*redis.Client{},
	}
	for _, a := range ids {
		for _, b := range ids {
			if a == b {
				continue
			}
			l := &link{}
			var err error
			if l.raft, err = faultproxy.Listen("127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			if l.resp, err = faultproxy.Listen("127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			c.links[pair{a, b}] = l
		}
	}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for id := range c.stopped {
			if p := c.procs[id]; p.Running() {
				syscall.Kill(p.Pid(), syscall.SIGCONT)
			}
		}
		for _, cl := range c.clients {
			cl.Close()
		}
		for _, l := range c.links {
			l.raft.Close()
			l.resp.Close()
		}
	})
	for i, id := range ids {
		var join []string
		if i > 0 {
			join = []string{c.proc(ids[0]).Addr()}
		}
		c.start(id, join, "")
		if i == 0 {
			c.waitLeader(30 * time.Second)
		}
	}
	c.waitLeader(30 * time.Second)
	return c
}

// start starts node id (a new process with a new data directory unless
// dataDir is set) and records it.
func (c *cluster) start(id string, join []string, dataDir string) {
	c.t.Helper()
	var raftAddrs, respAddrs []string
	for _, other := range c.ids {
		if other != id {
			l := c.links[pair{id, other}]
			raftAddrs = append(raftAddrs, other+"="+l.raft.Addr())
			respAddrs = append(respAddrs, other+"="+l.resp.Addr())
		}
	}
	p := testcluster.StartProc(c.t, bin, testcluster.ProcOptions{
		ID: id, Join: join, DataDir: dataDir,
		Args: []string{
			"--debug-peer-raft-addrs", strings.Join(raftAddrs, ","),
			"--debug-peer-resp-addrs", strings.Join(respAddrs, ","),
			"--debug-clock-offset", c.offsets[id].String(),
			"--log-store", c.store,
			// Snapshots often, so restarts restore one and replay the rest.
			"--snapshot-threshold", "64",
		},
		// Point every link towards id at the new process before it joins:
		// the leader reaches it only through them.
		OnStart: func(addr, raftAddr string) {
			for _, other := range c.ids {
				if other != id {
					l := c.links[pair{other, id}]
					l.raft.SetTarget(raftAddr)
					l.resp.SetTarget(addr)
				}
			}
		},
	})
	c.mu.Lock()
	c.procs[id] = p
	c.history[id] = append(c.history[id], p)
	c.mu.Unlock()
}

func (c *cluster) proc(id string) *testcluster.Proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[id]
}

func (c *cluster) isStopped(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopped[id]
}

// client returns a shared go-redis client for node id's current address,
// with retries off, so every outcome is seen as it is.
func (c *cluster) client(id string) *redis.Client {
	addr := c.proc(id).Addr()
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.clients[addr]
	if cl == nil {
		cl = redis.NewClient(&redis.Options{
			Addr: addr, MaxRetries: -1, PoolSize: 64,
			DialTimeout: time.Second, ReadTimeout: 20 * time.Second, WriteTimeout: 5 * time.Second,
		})
		c.clients[addr] = cl
	}
	return cl
}

// info returns node id's INFO raft, or an error (also for a stopped or dead
// node).
func (c *cluster) info(id string) (map[string]string, error) {
	if p := c.proc(id); p == nil || c.isStopped(id) || !p.Running() {
		return nil, fmt.Errorf("%s is not running", id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.proc(id).Info(ctx, "raft")
}

// leader returns the node every reachable running node names as leader,
// which says it is the ready leader; "" if there is none.
func (c *cluster) leader() string {
	leader := ""
	names := map[string]bool{}
	for _, id := range c.ids {
		if p := c.proc(id); p == nil || c.isStopped(id) || !p.Running() {
			continue
		}
		info, err := c.info(id)
		if err != nil {
			return ""
		}
		names[info["raft_leader_id"]] = true
		if info["raft_state"] == "leader" && info["raft_ready"] == "true" {
			leader = id
		}
	}
	if leader == "" || len(names) != 1 || !names[leader] {
		return ""
	}
	return leader
}

// anyLeader returns a node that says it is the ready leader, preferring the
// one all agree on; "" if none does.
func (c *cluster) anyLeader() string {
	if l := c.leader(); l != "" {
		return l
	}
	for _, id := range c.ids {
		if info, err := c.info(id); err == nil && info["raft_state"] == "leader" {
			return id
		}
	}
	return ""
}

func (c *cluster) waitLeader(timeout time.Duration) string {
	c.t.Helper()
	var l string
	if !testcluster.Poll(timeout, func() bool { l = c.leader(); return l != "" }) {
		return ""
	}
	return l
}

// others returns the IDs other than id, sorted.
func (c *cluster) others(id string) []string {
	var out []string
	for _, o := range c.ids {
		if o != id {
			out = append(out, o)
		}
	}
	sort.Strings(out)
	return out
}

func (c *cluster) cut(from, to string) {
	l := c.links[pair{from, to}]
	l.raft.Cut()
	l.resp.Cut()
}

func (c *cluster) healAll() {
	for _, l := range c.links {
		l.raft.Heal()
		l.resp.Heal()
	}
}

// stop SIGSTOPs node id and returns once every thread of the process has
// stopped (testcluster's Pause), with how long that took: only then is the
// fault in place.
func (c *cluster) stop(id string) time.Duration {
	c.mu.Lock()
	p := c.procs[id]
	c.stopped[id] = true
	c.mu.Unlock()
	took, err := p.Pause(30 * time.Second)
	if err != nil {
		c.t.Errorf("stop %s: %v", id, err)
	}
	return took
}

func (c *cluster) cont(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := syscall.Kill(c.procs[id].Pid(), syscall.SIGCONT); err != nil {
		c.t.Errorf("SIGCONT %s: %v", id, err)
	}
	delete(c.stopped, id)
}

// do runs a command on node id with a bounded wait.
func (c *cluster) do(id string, timeout time.Duration, args ...any) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.client(id).Do(ctx, args...).Result()
}

// digests returns each running node's RAFT.DIGEST (index, hex sum).
func (c *cluster) digests() (map[string]int64, map[string]string, error) {
	idx, sums := map[string]int64{}, map[string]string{}
	for _, id := range c.ids {
		v, err := c.do(id, 2*time.Second, "RAFT.DIGEST")
		if err != nil {
			return nil, nil, fmt.Errorf("%s: RAFT.DIGEST: %w", id, err)
		}
		a, ok := v.([]any)
		if !ok || len(a) != 2 {
			return nil, nil, fmt.Errorf("%s: RAFT.DIGEST reply %#v", id, v)
		}
		idx[id], _ = a[0].(int64)
		sums[id], _ = a[1].(string)
	}
	return idx, sums, nil
}
