package testcluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/internal/testcerts"
	"github.com/throttledb/throttledb/server"
)

// Node is one in-process throttledb node.
type Node struct {
	t      testing.TB
	cfg    server.Config
	Server *server.Server

	addr, raftAddr string // of the latest start, kept across Stop
	certs          *testcerts.Certs
}

// Options tunes a test node; zero values mean fast test defaults.
type Options struct {
	// ID is the node's ID; default "n<i>" in a cluster, "n1" alone.
	ID string
	// Join lists RESP addresses to join.
	Join []string
	// RequirePass sets the password.
	RequirePass string
	// DataDir reuses a data directory (for restarts); default t.TempDir().
	DataDir string
	// SnapshotThreshold overrides the server default.
	SnapshotThreshold uint64
	// TrailingLogs overrides the server default.
	TrailingLogs uint64
	// LeaderWait overrides the server default.
	LeaderWait time.Duration
	// Configure, if set, adjusts the node's configuration last.
	Configure func(*server.Config)
	// TLS, when set, runs the node with its node certificate (RESP over
	// TLS, mutual TLS between nodes); Client then connects with TLS,
	// presenting the client certificate.
	TLS *testcerts.Certs
	// ClusterSecret sets the cluster secret.
	ClusterSecret string
	// MaxMemory sets server.Config.MaxMemory (0: no limit).
	MaxMemory int64
}

// Logger returns a logger for test nodes: silent unless THROTTLEDB_TEST_LOG
// is set, in which case it writes to stderr.
func Logger(id string) *slog.Logger {
	var w io.Writer = io.Discard
	if os.Getenv("THROTTLEDB_TEST_LOG") != "" {
		w = os.Stderr
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", id)
}

// StartNode starts one node on 127.0.0.1:0 ports and stops it at cleanup. A
// node that bootstraps (no Join, no DataDir given) is returned once it is the
// ready leader.
func StartNode(t testing.TB, o Options) *Node {
	t.Helper()
	if o.ID == "" {
		o.ID = "n1"
	}
	bootstraps := o.DataDir == "" && len(o.Join) == 0
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	cfg := server.Config{
		ID:                o.ID,
		Addr:              "127.0.0.1:0",
		RaftAddr:          "127.0.0.1:0",
		DataDir:           o.DataDir,
		Join:              o.Join,
		RequirePass:       o.RequirePass,
		Logger:            Logger(o.ID),
		HeartbeatTimeout:  300 * time.Millisecond,
		ElectionTimeout:   300 * time.Millisecond,
		LeaderWait:        o.LeaderWait,
		SnapshotThreshold: o.SnapshotThreshold,
		TrailingLogs:      o.TrailingLogs,
		ClusterSecret:     o.ClusterSecret,
		MaxMemory:         o.MaxMemory,
	}
	if o.TLS != nil {
		cfg.TLSCertFile, cfg.TLSKeyFile, cfg.TLSCACertFile = o.TLS.NodeCert, o.TLS.NodeKey, o.TLS.CA
	}
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	n := &Node{t: t, cfg: cfg, certs: o.TLS}
	n.start()
	t.Cleanup(func() { n.Stop() })
	if bootstraps {
		WaitFor(t, 10*time.Second, "a bootstrapped node to lead", n.Server.IsLeader)
	}
	return n
}

func (n *Node) start() {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := server.Start(ctx, n.cfg)
	if err != nil {
		n.t.Fatalf("start node %s: %v", n.cfg.ID, err)
	}
	n.Server = srv
	n.addr, n.raftAddr = srv.Addr(), srv.RaftAddr()
}

// RaftAddr returns the node's Raft address (of its latest start, kept
// across Stop).
func (n *Node) RaftAddr() string { return n.raftAddr }

// ID returns the node's ID.
func (n *Node) ID() string { return n.cfg.ID }

// Addr returns the node's RESP address.
func (n *Node) Addr() string { return n.Server.Addr() }

// DataDir returns the node's data directory.
func (n *Node) DataDir() string { return n.cfg.DataDir }

// Client returns a go-redis client for the node, closed at cleanup.
func (n *Node) Client() *redis.Client {
	o := &redis.Options{Addr: n.Addr(), Password: n.cfg.RequirePass, MaxRetries: -1}
	if n.certs != nil {
		o.TLSConfig = n.certs.ClientConfig(n.t, true)
	}
	c := redis.NewClient(o)
	n.t.Cleanup(func() { c.Close() })
	return c
}

// Stop closes the node abruptly (as a crash would, less the process exit);
// it is a no-op on a stopped node.
func (n *Node) Stop() {
	if n.Server != nil {
		n.Server.Close()
		n.Server = nil
	}
}

// Running reports whether the node is started.
func (n *Node) Running() bool { return n.Server != nil }

// Restart starts the node again on its data directory (stopping it first if
// it runs). Its RESP and Raft addresses are new ports unless keepAddrs is
// set, in which case it reuses those of its latest start.
func (n *Node) Restart(keepAddrs bool) {
	n.t.Helper()
	n.Stop()
	n.cfg.Addr, n.cfg.RaftAddr = "127.0.0.1:0", "127.0.0.1:0"
	if keepAddrs {
		n.cfg.Addr, n.cfg.RaftAddr = n.addr, n.raftAddr
	}
	n.cfg.Join = nil // existing state: never join or bootstrap again
	n.start()
}

// WaitFor polls cond every 10 ms until it returns true, failing the test
// after timeout with msg.
func WaitFor(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, msg)
	}
}

// Poll polls cond every 10 ms until it returns true or timeout passes, and
// reports whether it did.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// String describes the node.
func (n *Node) String() string { return fmt.Sprintf("%s@%s", n.cfg.ID, n.Addr()) }
