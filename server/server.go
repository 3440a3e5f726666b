package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/throttledb/throttledb/fsm"
	"github.com/throttledb/throttledb/internal/latency"
	"github.com/throttledb/throttledb/internal/resp"
)

// Version is throttledb's version, reported by INFO and HELLO.
const Version = "0.1.0"

// Server is one throttledb node: a RESP listener in front of a Raft replica
// of the throttle state machine.
type Server struct {
	cfg     Config
	log     *slog.Logger
	fsm     *fsm.FSM
	raft    *raftNode
	prop    *proposer
	fwd     *forwarder
	router  *router
	deny    *denier // answers certain denials without the log
	pools   *resp.Pools
	tls     *tlsManager // nil without TLS
	ln      net.Listener
	advert  string // RESP address advertised to peers
	started time.Time

	// conns holds every open client connection, so that Close can close
	// them; nil once closing.
	connsMu sync.Mutex
	conns   map[net.Conn]struct{}
	// clientsByID holds every client connection being served, for CLIENT
	// LIST and CLIENT KILL (clients.go).
	clientsMu   sync.Mutex
	clientsByID map[int64]*clientConn
	// stats holds INFO commandstats and errorstats (stats.go).
	stats *serverStats
	// passDigest is the SHA-256 of cfg.RequirePass, computed once at
	// Start: checkPassword compares digests, never the passwords.
	passDigest [sha256.Size]byte

	// loadTarget is the last index of the log the state machine applies,
	// as of when the node started (lastCommandIndex);
	// loaded is set once reads are current (see loading).
	loadTarget uint64
	loaded     atomic.Bool

	// readyTerm is the term in which this node, as leader, last saw a
	// Barrier apply every entry of earlier terms (0: none). See isReady.
	readyTerm atomic.Uint64

	// Graceful shutdown: draining is set under drainMu, after which no
	// command is admitted, so active.Wait is safe.
	drainMu  sync.RWMutex
	draining bool
	active   sync.WaitGroup

	nextClientID   atomic.Int64
	clients        atomic.Int64
	connsTotal     atomic.Int64
	cmdsTotal      atomic.Int64
	pipelinedTotal atomic.Int64 // proposals queued while others of their batch were (serveBatch)

	// replyLat times a connection's replies from their outcome to their
	// write (INFO latency_reply; serveConn).
	replyLat latency.Histogram

	// register wakes keepRegistered at once (buffered, 1): a new leader
	// records its RESP address right away instead of at the next tick, so
	// followers can forward to it without waiting.
	register chan struct{}

	// lastRPC is when a RAFT.PROPOSE last arrived (Unix ns): see
	// awaitForwardersQuiet.
	lastRPC atomic.Int64

	// release wakes memoryReleaser (buffered, 1).
	release chan struct{}

	// metrics serves --metrics-addr (metrics.go); nil when off.
	metrics *metricsHTTP

	// shut coordinates SHUTDOWN with Shutdown (cmd_shutdown.go).
	shut shutdownCtl

	stop      chan struct{}
	bg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Start opens the node's Raft state, starts serving RESP on cfg.Addr and, for
// a new node with cfg.Join set, asks the cluster to admit it, retrying until
// it is admitted, a member refuses for good, or ctx ends. It returns once the
// node serves.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	tlsm, err := newTLSManager(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	if tlsm != nil {
		ln = tls.NewListener(ln, tlsm.respServerConfig())
	}
	s := &Server{
		cfg:         cfg,
		log:         cfg.Logger,
		fsm:         fsm.New(fsm.Config{Logger: cfg.Logger}),
		pools:       resp.NewPoolsConfig(nodePoolConfig(cfg, tlsm)),
		tls:         tlsm,
		ln:          ln,
		conns:       make(map[net.Conn]struct{}),
		clientsByID: make(map[int64]*clientConn),
		stats:       newServerStats(),
		started:     time.Now(),
		stop:        make(chan struct{}),
		register:    make(chan struct{}, 1),
		release:     make(chan struct{}, 1),
		shut:        shutdownCtl{req: make(chan struct{})},
	}
	s.passDigest = sha256.Sum256([]byte(cfg.RequirePass))
	if s.advert, err = advertised(ln.Addr(), cfg.AdvertiseAddr, "--advertise-addr"); err != nil {
		ln.Close()
		return nil, err
	}
	s.raft, err = openRaft(cfg, s.fsm, nodeSecurity{tls: tlsm, secret: []byte(cfg.ClusterSecret)})
	if err != nil {
		ln.Close()
		return nil, err
	}
	if cfg.ID == "" {
		s.cfg.ID = string(s.raft.trans.LocalAddr())
	}
	if s.raft.existing {
		// A new node has nothing to load; one restarted has its log.
		if s.loadTarget, err = lastCommandIndex(s.raft.store); err != nil {
			s.raft.close()
			ln.Close()
			return nil, fmt.Errorf("reading the end of the log: %w", err)
		}
	}
	s.prop = newProposer(s.raft, cfg.MaxBatch, cfg.ApplyTimeout, s.wallMs)
	if cfg.MaxMemory > 0 {
		s.prop.gate = newMemGate(cfg.MaxMemory, s.fsm, s.prop.clock)
	}
	s.prop.resolve = s.resolveLost
	s.prop.queueWait = cfg.LeaderWait
	s.prop.batchWait = !cfg.NoBatchWait
	if cfg.MaxInFlight > 0 {
		s.prop.inflight = make(chan struct{}, cfg.MaxInFlight)
	}
	s.fwd = newForwarder(s.pools, cfg.MaxBatch, cfg.LeaderWait+cfg.ApplyTimeout, s.log)
	s.fwd.batchWait = !cfg.NoBatchWait
	s.router = &router{view: s, local: s.prop, remote: s.fwd.to, wait: cfg.LeaderWait, retry: 20 * time.Millisecond, stop: s.stop}
	s.router.horizon, s.router.window = resendWindow(cfg.LeaderWait, cfg.ApplyTimeout)
	s.router.seqs = newForwardSession()
	// Denials without the log (see denier).
	s.prop.flight = newInFlight()
	s.deny = &denier{fsm: s.fsm, flight: s.prop.flight, clock: s.wallMs, ready: s.isReady}
	s.goBackground(s.prop.run)
	s.goBackground(s.fwd.run)
	s.goBackground(s.watchLeadership)
	s.goBackground(s.acceptLoop)
	s.goBackground(s.memoryReleaser)
	if cfg.MetricsAddr != "" {
		if err := s.startMetrics(); err != nil {
			s.Close()
			return nil, err
		}
	}
	s.log.Info("throttledb node started", "id", s.cfg.ID, "addr", s.Addr(), "raft", s.RaftAddr(), "advertise", s.advert,
		"data", cfg.DataDir, "existing_state", s.raft.existing)
	if len(cfg.Join) > 0 && !s.raft.existing {
		if err := s.join(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	s.goBackground(s.keepRegistered)
	return s, nil
}

func (s *Server) goBackground(fn func()) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		fn()
	}()
}

// wallMs is this node's wall clock in Unix milliseconds, the source of
// cluster time: shifted by Config.DebugClockOffset, which fault tests set to
// skew one node's clock.
func (s *Server) wallMs() int64 {
	return time.Now().Add(s.cfg.DebugClockOffset).UnixMilli()
}

// Addr returns the RESP address the node listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// AdvertiseAddr returns the RESP address the node gives its peers.
func (s *Server) AdvertiseAddr() string { return s.advert }

// RaftAddr returns the Raft address the node advertises to its peers.
func (s *Server) RaftAddr() string { return string(s.raft.trans.LocalAddr()) }

// ID returns the node's Raft server ID.
func (s *Server) ID() string { return s.cfg.ID }

// IsLeader reports whether the node is the leader and ready to serve.
func (s *Server) IsLeader() bool { return s.isReady() }

// isReady reports whether this node leads and has applied, in its current
// term, everything earlier leaders committed. Comparing terms (rather than
// keeping a flag) stays correct even when a lost-and-regained leadership
// reaches watchLeadership as a single notification.
func (s *Server) isReady() bool {
	t := s.readyTerm.Load()
	return t != 0 && s.raft.State() == raft.Leader && s.raft.CurrentTerm() == t
}

// FSM returns the node's state machine, for inspection.
func (s *Server) FSM() *fsm.FSM { return s.fsm }

// Shutdown stops the node gracefully: a leader first hands leadership to
// another voter (so a planned restart causes no election timeout), then the
// node stops accepting connections, lets commands in flight finish (until
// ctx ends), and closes Raft and its log cleanly. After a client's SHUTDOWN
// (StopRequested) it skips what that SHUTDOWN did or, with NOW, skipped.
func (s *Server) Shutdown(ctx context.Context) error {
	transferred, now := s.beginStop()
	if !transferred {
		s.transferLeadership()
	}
	s.ln.Close() // stop accepting; open connections finish below
	s.drainMu.Lock()
	s.draining = true
	s.drainMu.Unlock()
	done := make(chan struct{})
	go func() { s.active.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("shutdown deadline passed with commands in flight")
	}
	if !now {
		// Skipped for NOW: a node that did not hand over leadership is
		// still forwarded to until it stops, so the wait would only use
		// up ctx.
		s.awaitForwardersQuiet(ctx)
	}
	return s.Close()
}

// awaitForwardersQuiet waits, within ctx, until no follower has sent this
// node a RAFT.PROPOSE for a heartbeat timeout. Followers pipeline requests
// without waiting for replies; one still unread when the connection closes
// could not be told apart from one that ran, and its clients would get
// TRYAGAIN. A draining node answers each such request "shutting down"
// (routed again), and followers move to the new leader within about a
// heartbeat timeout of the transfer.
func (s *Server) awaitForwardersQuiet(ctx context.Context) {
	quiet := s.cfg.HeartbeatTimeout
	for time.Since(time.Unix(0, s.lastRPC.Load())) < quiet {
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close stops the node at once: connections are closed and Raft is shut
// down. Nothing acknowledged is lost: every acknowledged write is already in
// the log on disk.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.ln.Close()
		s.closeMetrics()
		s.closeConns()
		s.prop.close()
		s.fwd.close()
		s.closeErr = s.raft.close()
		s.pools.Close()
		s.bg.Wait()
		s.log.Info("throttledb node stopped", "id", s.cfg.ID)
	})
	return s.closeErr
}

func (s *Server) voters() int {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	n := 0
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			n++
		}
	}
	return n
}

// watchLeadership tracks whether this node may serve as leader. On winning
// an election it issues a Barrier and serves only once that has applied:
// until then its state machine may lack entries committed by earlier
// leaders, and a read from it (THROTTLE.PEEK) could be stale. (Writes are
// safe regardless: the state machine decides a grant when it applies the
// entry, after every earlier entry.)
func (s *Server) watchLeadership() {
	for {
		select {
		case <-s.stop:
			return
		case isLeader := <-s.raft.LeaderCh():
			s.readyTerm.Store(0)
			if !isLeader {
				s.log.Info("lost leadership")
				if s.raft.State() == raft.Shutdown {
					// A leader that removed itself: hashicorp/raft
					// (ShutdownOnRemove) shuts itself down, and may drop
					// futures as at any shutdown (raftwait.go), so the
					// waits on them end as they do at Close.
					s.raft.markDown()
				}
				continue
			}
			s.awaitBarrier()
		}
	}
}

// awaitBarrier marks the node ready once a Barrier issued in the current
// term has applied, retrying while the node still leads that term (a
// Barrier can time out under load; giving up would leave a leader that
// never serves).
func (s *Server) awaitBarrier() {
	term := s.raft.CurrentTerm()
	for s.raft.State() == raft.Leader && s.raft.CurrentTerm() == term {
		err := s.raft.Barrier(s.cfg.ApplyTimeout).Error()
		if err == nil {
			if s.raft.State() == raft.Leader && s.raft.CurrentTerm() == term {
				s.readyTerm.Store(term)
				s.log.Info("leader ready", "term", term)
				select {
				case s.register <- struct{}{}:
				default:
				}
			}
			return
		}
		s.log.Warn("barrier after election failed", "term", term, "err", err)
		select {
		case <-s.stop:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// leader returns the current leader's ID and RESP address, if known.
func (s *Server) leader() (id, respAddr string, ok bool) {
	_, lid := s.raft.LeaderWithID()
	if lid == "" {
		return "", "", false
	}
	if string(lid) == s.cfg.ID {
		return s.cfg.ID, s.advert, true // known before it is recorded
	}
	addr, ok := s.fsm.NodeAddr(string(lid))
	if a, debug := s.cfg.DebugPeerRESPAddrs[string(lid)]; debug && ok {
		addr = a // a fault test's proxy to the leader (Config.DebugPeerRESPAddrs)
	}
	return string(lid), addr, ok
}

// atLeader answers with local on this node if it is the ready leader, and
// otherwise forwards args to the leader and answers with its reply, relayed
// byte for byte; the router decides which, and when to give up. local
// returns the reply, or ErrNotLeader (wrapped) when Raft refused the
// command before logging it (the router then routes it again), or the
// error to answer.
func (s *Server) atLeader(c *call, local func(ctx context.Context) (any, error)) (any, error) {
	var reply any
	err := s.router.route(context.Background(), c.fwd,
		func(ctx context.Context) (err error) {
			reply, err = local(ctx)
			return err
		},
		func(_ context.Context, addr string) error {
			raw, err := s.forward(addr, c.args)
			if err := forwardFailure(raw, err, true); err != nil {
				s.log.Debug("forward failed", "to", addr, "err", err)
				return err
			}
			reply = rawReply(raw)
			return nil
		})
	return reply, err
}

// resolveLost learns what became of the entry (data) this node proposed at
// index, when it lost leadership with the entry in flight (Raft then says
// only ErrLeadershipLost): it waits, as a follower, until its log has
// applied that index, then compares the entry there with its own. The same
// entry was committed: its results. Another: it never will be, so it is
// safe to route again (ErrNotLeader). Not known within the bounds:
// ErrOutcomeUnknown, as before.
func (s *Server) resolveLost(index uint64, data []byte) ([]fsm.Result, error) {
	sum := fsm.EntrySum(data)
	deadline := time.Now().Add(s.cfg.LeaderWait + s.cfg.ApplyTimeout)
	for {
		switch res, fate := s.fsm.ResultsAt(index, sum); fate {
		case fsm.FateCommitted:
			return res, nil
		case fsm.FateReplaced:
			return nil, fmt.Errorf("%w: entry %d was replaced after leadership was lost", ErrNotLeader, index)
		case fsm.FateForgotten:
			return nil, fmt.Errorf("%w: leadership lost; entry %d no longer remembered", ErrOutcomeUnknown, index)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: leadership lost; entry %d not applied in time", ErrOutcomeUnknown, index)
		}
		select {
		case <-s.stop:
			return nil, fmt.Errorf("%w: leadership lost, then the node stopped", ErrOutcomeUnknown)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// ready, leading and leaderAddr make the Server the router's leaderView.
func (s *Server) ready() bool   { return s.isReady() }
func (s *Server) leading() bool { return s.raft.State() == raft.Leader }
func (s *Server) leaderAddr() (string, bool) {
	_, addr, ok := s.leader()
	return addr, ok && addr != s.advert
}

// msgNotLeader is the reply of a node that received a forwarded command but
// is not the leader; the forwarding node re-routes on it, so clients never
// see it.
const msgNotLeader = "NOTLEADER this node is not the leader"

// msgDraining is the reply of a node that is shutting down to a command it
// did not run (see errorText(ErrShuttingDown)).
var msgDraining = []byte("-" + errorText(ErrShuttingDown))

// notServed reports whether a forwarded command's reply says the peer did
// not run it: it is not (or no longer) the leader, or it is shutting down
// (a leader that handed over leadership before stopping). Such a command is
// routed again instead of relayed, so a planned leader change fails no
// request.
func notServed(raw []byte) bool {
	return bytes.HasPrefix(raw, []byte("-NOTLEADER")) || bytes.HasPrefix(raw, msgDraining)
}

// forward sends args to addr wrapped in RAFT.FWD and returns the raw reply.
// It allows the leader its own wait for readiness plus a commit.
func (s *Server) forward(addr string, args [][]byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.LeaderWait+s.cfg.ApplyTimeout)
	defer cancel()
	fwd := make([][]byte, 0, len(args)+1)
	fwd = append(fwd, []byte("RAFT.FWD"))
	fwd = append(fwd, args...)
	return s.pools.Get(addr).Do(ctx, fwd...)
}

// Leader returns the current leader's ID and RESP address as this node
// knows them, or ErrNoLeader.
func (s *Server) Leader() (id, respAddr string, err error) {
	id, respAddr, ok := s.leader()
	if !ok {
		return "", "", ErrNoLeader
	}
	return id, respAddr, nil
}
