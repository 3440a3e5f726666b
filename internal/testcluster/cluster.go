package testcluster

import (
	"fmt"
	"testing"
	"time"
)

// Cluster is a set of in-process nodes that form one Raft cluster.
type Cluster struct {
	t     testing.TB
	Nodes []*Node
}

// Start starts n nodes: the first bootstraps, the others join it. It
// returns once every node knows the leader.
func Start(t testing.TB, n int, o Options) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	for i := 1; i <= n; i++ {
		no := o
		no.ID = fmt.Sprintf("n%d", i)
		if i > 1 {
			no.Join = []string{c.Nodes[0].Addr()}
		}
		c.Nodes = append(c.Nodes, StartNode(t, no))
		if i == 1 {
			c.WaitForLeader(10 * time.Second)
		}
	}
	WaitFor(t, 10*time.Second, "every node to know the leader's address", func() bool {
		for _, nd := range c.Running() {
			if _, _, ok := leaderOf(nd); !ok {
				return false
			}
		}
		return true
	})
	return c
}

func leaderOf(n *Node) (string, string, bool) {
	id, addr, err := n.Server.Leader()
	return id, addr, err == nil
}

// Running returns the nodes that are started.
func (c *Cluster) Running() []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// Leader returns the running node that is the ready leader, or nil.
func (c *Cluster) Leader() *Node {
	for _, n := range c.Running() {
		if n.Server.IsLeader() {
			return n
		}
	}
	return nil
}

// WaitForLeader waits until a running node is the ready leader and returns it.
func (c *Cluster) WaitForLeader(timeout time.Duration) *Node {
	c.t.Helper()
	var l *Node
	WaitFor(c.t, timeout, "a ready leader", func() bool { l = c.Leader(); return l != nil })
	return l
}

// Followers returns the running nodes that are not the leader.
func (c *Cluster) Followers() []*Node {
	var out []*Node
	for _, n := range c.Running() {
		if !n.Server.IsLeader() {
			out = append(out, n)
		}
	}
	return out
}

// Addrs returns the RESP addresses of the running nodes.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, n := range c.Running() {
		out = append(out, n.Addr())
	}
	return out
}
