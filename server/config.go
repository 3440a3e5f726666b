package server

import (
	"log/slog"
	"time"

	"github.com/throttledb/throttledb/internal/resp"
)

// Config configures a Server. Zero values mean the documented defaults.
type Config struct {
	// ID is this node's Raft server ID. Default: the Raft address.
	ID string
	// Addr is the RESP listen address. Default "127.0.0.1:6380"; a port of
	// 0 picks a free one (see Server.Addr).
	Addr string
	// AdvertiseAddr is the RESP address other nodes use to reach this one
	// (followers forward to the leader's). Default: the address Addr is
	// bound to. Required when Addr binds a wildcard host (0.0.0.0, [::]).
	AdvertiseAddr string
	// RaftAddr is the Raft transport's listen address. Default
	// "127.0.0.1:7380"; a port of 0 picks a free one.
	RaftAddr string
	// RaftAdvertise is the Raft address peers dial. Default: the address
	// RaftAddr is bound to. Required when RaftAddr binds a wildcard host.
	RaftAdvertise string
	// DataDir holds the Raft log, stable store and snapshots. Required.
	DataDir string
	// Join lists RESP addresses of cluster members to ask for admission.
	// Empty: a node with no existing state bootstraps a one-node cluster.
	Join []string
	// RequirePass, when set, is the password clients must AUTH with. Every
	// node of a cluster must use the same one: forwarding and joining
	// authenticate with it.
	RequirePass string
	// Logger receives the node's logs. Default: slog.Default().
	Logger *slog.Logger

	// HeartbeatTimeout and ElectionTimeout tune failure detection.
	// Default 500 ms each: a dead leader is replaced within about 1-2 s.
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	// LeaderWait bounds how long a command waits for a leader before it
	// fails with CLUSTERDOWN. Default 2 s.
	LeaderWait time.Duration
	// ApplyTimeout bounds how long a write waits to be committed once the
	// leader has handed it to Raft (and, before that, Raft's own wait for
	// room in its queue): a write not committed by then is answered
	// TRYAGAIN (ErrOutcomeUnknown), as it may still be committed later.
	// A write waits for its turn to be handed to Raft at most LeaderWait,
	// then gets CLUSTERDOWN. Default 5 s.
	ApplyTimeout time.Duration
	// SnapshotThreshold is how many log entries since the last snapshot
	// trigger a new one; SnapshotInterval is how often that is checked.
	// Defaults 8192 and 30 s. TrailingLogs entries are kept after a
	// snapshot so slow followers can catch up from the log. Default 10240.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// MaxBatch caps the commands proposed in one log entry. Default 512.
	MaxBatch int
	// MaxInFlight caps the log entries the proposer has handed to Raft and
	// not yet seen committed; commands arriving meanwhile fill the next
	// entry. Default 1: measured against 2, 4 and no cap, it made the
	// biggest entries (24 commands against 8.5 uncapped under 50 clients)
	// and the highest throughput through the leader (see "Performance" in
	// README.md). Negative: no cap.
	MaxInFlight int
	// NoBatchWait turns off the leader's wait, before proposing an entry,
	// for the clients the previous entry answered to send again
	// (--batch-wait no; see proposer.waitReturns): on, entries are larger
	// and cost every node less CPU per command when clients send again as
	// soon as answered. It also turns off a follower's like wait before
	// it forwards a batch (forwarder.waitReturns).
	NoBatchWait bool
	// MaxClients caps the open client connections, as Redis's maxclients
	// does; a connection over the cap gets "ERR max number of clients
	// reached" and is closed. Default 10000.
	MaxClients int
	// Timeout closes a client connection idle for this long (Redis's
	// timeout). Default 0: never.
	Timeout time.Duration
	// ProtoMaxBulkLen is the largest argument a client may send (Redis's
	// proto-max-bulk-len). Default 512 MiB.
	ProtoMaxBulkLen int64
	// ClientQueryBufferLimit caps what one client may have buffered
	// towards incomplete commands (Redis's client-query-buffer-limit).
	// Default 1 GiB.
	ClientQueryBufferLimit int64

	// LogStore (--log-store) is the Raft log store of a new data
	// directory: LogStoreBolt ("bolt", raft-boltdb) or LogStoreWAL ("wal",
	// raft-wal). Empty: whichever the data directory holds, else
	// DefaultLogStore. A data directory keeps the store it was created
	// with; opening it with the other is ErrLogStoreMismatch.
	LogStore string

	// NoSync skips fsync on the Raft log. Never set it in production: a
	// power loss could then lose acknowledged grants. Default false. It
	// applies to the bolt log store only: raft-wal always fsyncs.
	NoSync bool

	// TLSCertFile and TLSKeyFile are the node's certificate and key (PEM),
	// TLSCACertFile the CA bundle that signs every node's certificate. Set
	// together, or not at all. With them the RESP port speaks TLS only, and
	// all node-to-node traffic (Raft, forwarding, joining) uses mutual TLS
	// verified against the CA. The node certificate must be valid for both
	// serverAuth and clientAuth and name the node's advertised addresses.
	// Server.ReloadTLS reads the files again.
	TLSCertFile   string
	TLSKeyFile    string
	TLSCACertFile string
	// TLSAuthClients is Redis's tls-auth-clients for the RESP port: "yes"
	// (the default) requires a client certificate signed by the CA,
	// "optional" verifies one if presented, "no" does not ask. Node-to-node
	// connections always require one.
	TLSAuthClients string
	// ClusterSecret, when set, authenticates nodes to each other
	// independently of RequirePass: a challenge-response handshake on every
	// Raft connection, and `AUTH throttledb-node <secret>` (NodeUser) on the
	// RESP connections nodes open to each other. Every node of a cluster
	// must use the same one. Without it nodes AUTH with RequirePass.
	ClusterSecret string
	// NoProtectedMode turns protected mode off (--protected-mode no).
	// Protected mode is on by default, as in Redis: a node without a
	// password refuses clients that are not on the loopback interface, and
	// a node whose Raft address is not loopback refuses to start without
	// TLS, since anyone reaching that port could otherwise rewrite the
	// cluster's log.
	NoProtectedMode bool
	// MaxMemory (--maxmemory), when positive, caps the memory of the
	// state: while this node leads, a command that would create a key is
	// refused with Redis's OOM error if the live keys, as the state
	// machine accounts them (fsm.MemoryUsage), would then exceed it;
	// commands on existing keys still work. It bounds the state, not the
	// process: Raft's log cache, connections and garbage come on top.
	// Zero (the default) or negative: no limit. See memGate.
	MaxMemory int64
	// MetricsAddr (--metrics-addr), when set, is the host:port of an HTTP
	// listener serving Prometheus metrics (/metrics), liveness (/healthz)
	// and readiness (/readyz); see metrics.go. It has no authentication:
	// bind it to loopback or a private network. A port of 0 picks a free
	// one (see Server.MetricsAddr). Default: off.
	MetricsAddr string
	// DebugPeerRaftAddrs and DebugPeerRESPAddrs are for fault-injection
	// tests only (test/faults): they map a member's ID to the address this
	// node dials to reach it, for Raft RPCs and for forwarded commands
	// respectively, instead of the address the cluster records. A test
	// points them at proxies it controls, one per directed pair of nodes,
	// so that it can cut any link one way or both. IDs not listed are
	// dialled as usual. Never set them in production.
	DebugPeerRaftAddrs map[string]string
	DebugPeerRESPAddrs map[string]string
	// DebugClockOffset, for fault-injection tests only, is added to the wall
	// clock this node reads for cluster time (the time a leader stamps into
	// log entries, and the clock of reads), to simulate a skewed clock.
	DebugClockOffset time.Duration
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:6380"
	}
	if c.RaftAddr == "" {
		c.RaftAddr = "127.0.0.1:7380"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	def(&c.HeartbeatTimeout, 500*time.Millisecond)
	def(&c.ElectionTimeout, 500*time.Millisecond)
	def(&c.LeaderWait, 2*time.Second)
	def(&c.ApplyTimeout, 5*time.Second)
	def(&c.SnapshotInterval, 30*time.Second)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.MaxClients == 0 {
		c.MaxClients = 10000
	}
	if c.ProtoMaxBulkLen == 0 {
		c.ProtoMaxBulkLen = resp.DefaultMaxBulkLen
	}
	if c.ClientQueryBufferLimit == 0 {
		c.ClientQueryBufferLimit = resp.DefaultQueryBufferLimit
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 512
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 1
	}
	return c
}
