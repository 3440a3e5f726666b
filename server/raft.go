package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/throttledb/throttledb/fsm"
)

// raftNode bundles Raft with the stores it owns, so they close together.
type raftNode struct {
	*raft.Raft
	trans    *raft.NetworkTransport
	stream   *tcpStreamLayer // trans's; nil in tests that build a raftNode by hand
	store    logStore
	logStore string // LogStoreBolt or LogStoreWAL
	snaps    raft.SnapshotStore
	existing bool // the data directory already held Raft state
	// lat times this node's log writes and state-machine applies (INFO
	// latency).
	lat *raftLatency
	// down is closed once Raft has shut down (see raftwait.go).
	down     chan struct{}
	downOnce sync.Once
	// restores holds shutdown back while a user restore runs (see
	// raftNode.Restore).
	restores restoreGate
}

// openRaft opens (or creates) the node's Raft state in cfg.DataDir and starts
// Raft. A node with no existing state and nothing to join bootstraps a
// one-node cluster; a node with existing state never bootstraps again.
//
// sec says how Raft connections are secured (see nodeSecurity).
func openRaft(cfg Config, f *fsm.FSM, sec nodeSecurity) (*raftNode, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("data directory not set")
	}
	if err := os.MkdirAll(cfg.DataDir, dirMode); err != nil {
		return nil, err
	}
	hlog := raftLogger(cfg.Logger)
	store, snaps, kind, err := openStores(cfg.DataDir, cfg.LogStore, cfg.NoSync, hlog, f.Preload)
	if err != nil {
		return nil, err
	}
	trans, stream, err := newTransport(cfg, sec, hlog)
	if err != nil {
		store.Close()
		if errors.Is(err, ErrProtectedMode) {
			return nil, err
		}
		return nil, fmt.Errorf("raft transport on %s: %w", cfg.RaftAddr, err)
	}
	id := cfg.ID
	if id == "" {
		id = string(trans.LocalAddr())
	}
	// Raft's batching knobs keep their defaults, on purpose. The proposer
	// already batches (a log entry carries every command queued while the
	// previous entry commits, up to Config.MaxBatch) and keeps one entry in
	// flight by default (--max-inflight-entries), so BatchApplyCh (raft
	// gathering several Apply calls per store) and MaxAppendEntries
	// (entries per AppendEntries, default 64) have nothing to gather:
	// measured with 1, 2 and 4 entries in flight, one gave the most
	// commands per entry and the best throughput (docs/performance.md, "Group commit").
	// The heartbeat and election timeouts come from Config (500 ms); the
	// lease is half the heartbeat, so that a leader cut off from a quorum
	// steps down before the others can elect a new one.
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(id)
	rc.Logger = hlog
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.HeartbeatTimeout / 2
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs

	existing, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		trans.Close()
		store.Close()
		return nil, err
	}
	lat := &raftLatency{}
	// Why a log cache: without one, Raft reads every entry back from the
	// store right after writing it: the leader once per follower to send
	// it, and every node once more to apply it at commit: with raft-wal
	// each a 64 KiB pread of the segment and a decode (docs/performance.md, "Where it
	// stands": the bytes each node read and wrote to disk per request fell
	// thirtyfold and more). The cache keeps the newest entries it stored;
	// older ones are read from the store as before.
	cached, err := raft.NewLogCache(logCacheEntries, timedLogStore{store, lat})
	if err != nil {
		f.Preload(nil, 0)
		trans.Close()
		store.Close()
		return nil, err
	}
	r, err := raft.NewRaft(rc, timedFSM{f, lat}, cached, store, snaps, trans)
	// NewRaft restored the newest snapshot, if any, and with it took the
	// preloaded image; drop it in case it did not (it chose another).
	f.Preload(nil, 0)
	if err != nil {
		trans.Close()
		store.Close()
		return nil, err
	}
	if !existing && len(cfg.Join) == 0 {
		boot := raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter, ID: rc.LocalID, Address: trans.LocalAddr(),
		}}}
		if err := r.BootstrapCluster(boot).Error(); err != nil {
			r.Shutdown()
			trans.Close()
			store.Close()
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
		cfg.Logger.Info("bootstrapped a new single-node cluster", "id", id)
	}
	if electAlone(r, rc.LocalID) {
		cfg.Logger.Debug("the only voter: election started at once", "id", id)
	}
	return &raftNode{Raft: r, trans: trans, stream: stream, store: store, logStore: kind, snaps: snaps, existing: existing, lat: lat, down: make(chan struct{})}, nil
}

// logCacheEntries is how many of the newest log entries Raft keeps in
// memory (see openRaft): far more than are in flight at once (one by
// default, Config.MaxInFlight), with room for a follower a little behind,
// and small, since an entry holds at most Config.MaxBatch commands.
const logCacheEntries = 64

// openStores opens the Raft log and stable store (kind: LogStoreBolt or
// LogStoreWAL, or "" for whatever dir holds, else DefaultLogStore; fsync on,
// unless noSync for bolt) and the snapshot store in dir, after checking them
// for damage (ErrDataCorrupt; see datacheck.go and walcheck.go) and
// tightening the modes of what an older version created (see modes.go).
// A data directory opened with the other store than the one it holds is
// ErrLogStoreMismatch. It returns the store it opened.
//
// The order matters: the store's files are locked first, so that no other
// process writes them while they are read; their structure is checked
// before they are opened (a truncated bbolt file mapped by bbolt kills the
// process with SIGBUS on first touch); every record is read back once the
// store is open.
//
// keep, if not nil, receives the newest snapshot's decoded image (see
// checkSnapshots), for the state machine's Preload.
func openStores(dir, kind string, noSync bool, hlog hclog.Logger, keep func(*fsm.Image, uint64)) (logStore, raft.SnapshotStore, string, error) {
	if err := tightenModes(dir); err != nil {
		return nil, nil, "", err
	}
	kind, err := chooseLogStore(dir, kind)
	if err != nil {
		return nil, nil, "", err
	}
	start := time.Now()
	var store logStore
	if kind == LogStoreWAL {
		store, err = openWAL(dir, hlog, keep, 0)
	} else {
		store, err = openBolt(dir, noSync, keep)
	}
	if err != nil {
		return nil, nil, "", err
	}
	hlog.Info("data directory checked", "dir", dir, "log-store", kind, "took", time.Since(start).String())
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, retainSnapshots, hlog)
	if err != nil {
		store.Close()
		return nil, nil, "", fmt.Errorf("open snapshot store: %w", err)
	}
	// NewFileSnapshotStore creates its directory 0755.
	if err := os.Chmod(filepath.Join(dir, snapshotsDir), dirMode); err != nil {
		store.Close()
		return nil, nil, "", err
	}
	return store, privateSnapshots{snaps, filepath.Join(dir, snapshotsDir)}, kind, nil
}

// retainSnapshots is how many snapshots a data directory keeps.
const retainSnapshots = 2

// newTransport returns Raft's transport and the stream layer under it.
func newTransport(cfg Config, sec nodeSecurity, hlog hclog.Logger) (*raft.NetworkTransport, *tcpStreamLayer, error) {
	bind, advertise := cfg.RaftAddr, cfg.RaftAdvertise
	// Listen first, so that a port of 0 is resolved before it is
	// advertised: peers must be able to dial the address we give them.
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, nil, err
	}
	adv, err := advertised(ln.Addr(), advertise, "--raft-advertise")
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	if err := checkProtectedRaft(cfg, sec.tls != nil, ln.Addr(), adv); err != nil {
		ln.Close()
		return nil, nil, err
	}
	addr, err := net.ResolveTCPAddr("tcp", adv)
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("raft advertise address %q: %w", adv, err)
	}
	stream := &tcpStreamLayer{ln: ln, advertise: addr, sec: sec}
	tc := &raft.NetworkTransportConfig{Stream: stream, MaxPool: 3, Timeout: 10 * time.Second, Logger: hlog}
	if peers := cfg.DebugPeerRaftAddrs; len(peers) > 0 {
		m := peerAddrs{}
		for k, v := range peers {
			m[k] = v
		}
		id := cfg.ID
		if id == "" {
			id = adv
		}
		if _, ok := m[id]; !ok {
			m[id] = adv
		}
		tc.ServerAddressProvider = m
	}
	return raft.NewNetworkTransportWithConfig(tc), stream, nil
}

// peerAddrs is a raft.ServerAddressProvider over a fixed map of member IDs
// to addresses (Config.DebugPeerRaftAddrs); raft dials a member it does not
// list at the address in the configuration.
type peerAddrs map[string]string

func (p peerAddrs) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) {
	if a, ok := p[string(id)]; ok {
		return raft.ServerAddress(a), nil
	}
	return "", fmt.Errorf("no debug address for %s", id)
}

// advertised returns the address to give peers for a listener bound to
// bound: explicit if set, else the bound address, which must then name a
// reachable host rather than a wildcard. flagName names the setting in the
// error.
func advertised(bound net.Addr, explicit, flagName string) (string, error) {
	if explicit != "" {
		if _, _, err := net.SplitHostPort(explicit); err != nil {
			return "", fmt.Errorf("%s %q: %w", flagName, explicit, err)
		}
		return explicit, nil
	}
	if tcp, ok := bound.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		return "", fmt.Errorf("%s bound to all interfaces: set %s to the address other nodes should use", bound, flagName)
	}
	return bound.String(), nil
}

// tcpStreamLayer is raft's TCP stream layer over a listener we opened
// ourselves (raft's own constructor cannot report a port chosen for :0
// before it advertises it). With TLS or a cluster secret configured, every
// connection, dialed or accepted, passes the node handshake (mutual TLS
// against the CA, then the secret) before raft reads or writes a byte of
// it, so a peer that fails it cannot complete any Raft RPC.
//
// It also keeps every connection it dialed or accepted until it is closed,
// so that shutdown can close them (see closeConns).
type tcpStreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	sec       nodeSecurity

	mu    sync.Mutex
	conns map[*trackedConn]struct{} // open connections
	shut  bool                      // closeConns ran: no new connections
}

// Dial dials address, unless closeConns has run: then it returns an error
// wrapping net.ErrClosed.
func (t *tcpStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if t.isShut() {
		return nil, fmt.Errorf("raft connection to %s: %w", address, net.ErrClosed)
	}
	conn, err := t.sec.dial(string(address), timeout)
	if err != nil {
		return nil, err
	}
	// closeConns may have run during the dial.
	tc := t.track(conn)
	if tc == nil {
		return nil, fmt.Errorf("raft connection to %s: %w", address, net.ErrClosed)
	}
	return tc, nil
}

func (t *tcpStreamLayer) isShut() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.shut
}

// Accept returns the next connection at once; its handshake runs on its
// first Read or Write (see acceptedConn). After closeConns it closes what
// it accepts and waits for the next, rather than report an error: raft's
// accept loop logs every error until the transport is closed, which
// happens only once Raft has shut down.
func (t *tcpStreamLayer) Accept() (net.Conn, error) {
	for {
		conn, err := t.ln.Accept()
		if err != nil {
			return nil, err
		}
		if t.sec.enabled() {
			conn = &acceptedConn{Conn: conn, sec: t.sec}
		}
		if tc := t.track(conn); tc != nil {
			return tc, nil
		}
	}
}
func (t *tcpStreamLayer) Close() error   { return t.ln.Close() }
func (t *tcpStreamLayer) Addr() net.Addr { return t.advertise }

// track wraps conn so that closing it forgets it, and keeps it; after
// closeConns it closes conn instead and returns nil.
func (t *tcpStreamLayer) track(conn net.Conn) *trackedConn {
	tc := &trackedConn{Conn: conn, raw: rawConn(conn), layer: t}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shut {
		tc.raw.Close()
		return nil
	}
	if t.conns == nil {
		t.conns = map[*trackedConn]struct{}{}
	}
	t.conns[tc] = struct{}{}
	return tc
}

// closeConns closes every connection the layer dialed or accepted and
// refuses new ones, failing any Raft RPC in flight at once.
//
// Why: hashicorp/raft (v1.7.3) bounds an RPC only by a deadline on its
// connection, and nothing else ends it. Raft.Shutdown waits for all of
// Raft's goroutines, among them a leader's replication goroutine sending a
// snapshot (NetworkTransport.InstallSnapshot: deadline 10 s per 256 KiB
// of snapshot, minutes for a few megabytes) or an AppendEntries (10 s),
// and a follower's main loop reading a snapshot from its leader (no
// deadline at all on an accepted connection). A peer that stops reading or
// sending mid-RPC, while its connection stays up, holds Shutdown that long,
// and NetworkTransport.Close, which would not close these connections
// anyway (only the listener; pooled ones need CloseStreams), runs after it.
// Failing the RPCs loses nothing: once Shutdown has begun, raft's leader
// loop stops replication without a final send (it closes each
// replication's stopCh, which hands replicate no last index to send); a
// replication or heartbeat goroutine whose RPC fails returns to its loop,
// which ends on that stopCh (a new Dial fails at once); a candidate's vote
// requests answer into a buffered channel; and a follower's failed
// snapshot is cancelled (the sink discarded, nothing installed) and
// answered with an error. Closing twice is harmless: raft's
// netConn.Release and handleConn close their connections again, which only
// returns an error, and NetworkTransport.Close afterwards closes only the
// listener.
//
// The raw TCP connection is closed, not a TLS one: tls.Conn.Close first
// sends a close_notify alert, which can wait up to 5 s on a peer that is
// not reading.
func (t *tcpStreamLayer) closeConns() {
	t.mu.Lock()
	t.shut = true
	open := make([]*trackedConn, 0, len(t.conns))
	for tc := range t.conns {
		open = append(open, tc)
	}
	t.mu.Unlock()
	for _, tc := range open {
		tc.raw.Close()
	}
}

// openConns is how many connections the layer holds open.
func (t *tcpStreamLayer) openConns() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// trackedConn is a connection of a tcpStreamLayer: closing it removes it
// from the layer's set, so the set holds only open connections however
// many a long-lived node makes.
type trackedConn struct {
	net.Conn          // what raft reads and writes: TLS, handshaking or plain
	raw      net.Conn // the TCP connection under it
	layer    *tcpStreamLayer
}

// Close removes c from its layer's set and closes it.
func (c *trackedConn) Close() error {
	c.layer.mu.Lock()
	delete(c.layer.conns, c)
	c.layer.mu.Unlock()
	return c.Conn.Close()
}

// rawConn returns the TCP connection under conn.
func rawConn(conn net.Conn) net.Conn {
	switch c := conn.(type) {
	case *tls.Conn:
		return c.NetConn()
	case *acceptedConn:
		return c.Conn
	}
	return conn
}

func (n *raftNode) close() error {
	err := n.shutdown()
	n.trans.Close()
	if cerr := n.store.Close(); err == nil {
		err = cerr
	}
	return err
}

// electAlone starts the election of a node that is its configuration's
// only voter at once, and reports whether it did. Raft would first wait out
// a heartbeat timeout (0.5-1 s by default) for a leader it cannot have:
// that was a sixth of a restart with a million keys. hashicorp/raft has no
// call for it, but its follower loop re-arms its heartbeat timer at once
// when ReloadConfig lowers the heartbeat timeout, and a node that has
// heard from no leader since it started then starts an election; the
// timeout is set back right after. Only the timing changes: an election is
// always safe, and a lone voter elects itself whenever it starts one. With
// other voters the wait is kept, so that a restarted node does not start
// elections against a healthy leader.
func electAlone(r *raft.Raft, id raft.ServerID) bool {
	f := r.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	servers := f.Configuration().Servers
	if len(servers) != 1 || servers[0].ID != id || servers[0].Suffrage != raft.Voter {
		return false
	}
	rc := r.ReloadableConfig()
	hb := rc.HeartbeatTimeout
	rc.HeartbeatTimeout = hb - time.Millisecond
	if r.ReloadConfig(rc) != nil {
		return false // a timeout too short to lower (raft validates it)
	}
	rc.HeartbeatTimeout = hb
	r.ReloadConfig(rc) // the values it had, which it accepted: cannot fail
	return true
}
