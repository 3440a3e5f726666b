package server

import (
	"context"
	"errors"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/throttledb/throttledb/internal/resp"
	"github.com/tidwall/redcon"
)

// Why not redcon's server: its request parser (v1.6.4, the newest release)
// crashes on a bulk length near 2^63, spins on a huge multibulk count,
// allocates the rest of an inline line for each of its arguments and scans
// an incomplete command again on every read. Guarding it would mean a
// second full parser in front of it on every request, so the connection
// loop here reads with resp.CommandReader (incremental, with Redis's limits)
// and keeps redcon only for writing replies.

// writeTimeout bounds how long a reply may wait for a client that does not
// read: such a client is dropped instead of holding its goroutine and
// buffers for ever.
const writeTimeout = time.Minute

// writeSlack is how much less than writeTimeout a reply may be given: the
// connection loop moves its write deadline only once it is that much
// nearer than writeTimeout, at most once a second, rather than for every
// batch of replies (each move is a runtime timer update: about 1% of a
// node's CPU at redis-benchmark -P 1 when done per batch).
const writeSlack = time.Second

// Replies to connections refused before they are served, in Redis's words.
const (
	msgMaxClients = "ERR max number of clients reached"
	msgDenied     = "DENIED throttledb is running in protected mode because protected mode is enabled and no password is set for the default user. " +
		"In this mode connections are only accepted from the loopback interface. " +
		"If you want to connect from external computers to throttledb you may adopt one of the following solutions: " +
		"1) Set up a password for the default user with --requirepass, --requirepass-file or THROTTLEDB_PASSWORD. " +
		"2) If you started the server manually just for testing, restart it with the '--protected-mode no' option. " +
		"3) Bind --addr to a loopback address and reach it through a tunnel. " +
		"NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside."
)

// clientConn is one client connection. Replies are buffered in the
// embedded redcon.Writer and written once per pipeline.
type clientConn struct {
	*redcon.Writer
	nc      net.Conn
	addr    string
	sess    *session
	ctx     context.Context // carries the connection's origin (proposer.go)
	origin  *origin         // the one ctx carries
	waiting []pendingReply  // serveBatch's, kept to reuse its memory
	calls   []call          // serveBatch's, likewise
	tickets []ticket        // serveBatch's, likewise
	closed  bool            // QUIT: close once the replies so far are written

	// For CLIENT LIST (clients.go): set at accept, then read-only.
	created time.Time
	laddr   string
	fd      int
	// pub is what the connection last published about itself.
	pubMu sync.Mutex
	pub   clientState

	// stats counts the error replies written (WriteError, in stats.go) for
	// INFO errorstats; errs counts them on this connection, so writeReply
	// can tell a failed call.
	stats *serverStats
	errs  int
	local []localStat // commandstats not yet added to stats (flushStats)
	tick  time.Time   // when the last command ended, or the batch started
	fresh bool        // tick was read when the last reply was written
	// deadline is the write deadline serveConn last set (see writeSlack).
	deadline time.Time
}

// RemoteAddr returns the client's address.
func (c *clientConn) RemoteAddr() string { return c.addr }

// Close closes the connection after the replies written so far; the rest
// of the pipeline is not served.
func (c *clientConn) Close() { c.closed = true }

// acceptLoop accepts RESP connections until the listener is closed.
func (s *Server) acceptLoop() {
	var backoff time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, as net/http
			// does, rather than spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", "err", err, "retry_in", backoff)
			select {
			case <-s.stop:
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		if !s.trackConn(nc) {
			nc.Close()
			return
		}
		go s.serveConn(nc)
	}
}

// trackConn records an open connection so that Close can close it; it
// reports false once the server is closing.
func (s *Server) trackConn(nc net.Conn) bool {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	if s.conns == nil {
		return false
	}
	s.conns[nc] = struct{}{}
	return true
}

func (s *Server) untrackConn(nc net.Conn) {
	s.connsMu.Lock()
	delete(s.conns, nc)
	s.connsMu.Unlock()
	nc.Close()
}

// closeConns closes every client connection and refuses new ones.
func (s *Server) closeConns() {
	s.connsMu.Lock()
	conns := s.conns
	s.conns = nil
	s.connsMu.Unlock()
	for nc := range conns {
		nc.Close()
	}
}

// bigBuffer is the request buffer size from which a connection's end hands
// its memory back to the operating system at once.
const bigBuffer = 16 << 20

// releaseMemory returns freed memory to the operating system soon, at most
// once a second. Go's background scavenger would take minutes to give back
// the hundreds of megabytes a client's large argument may have taken, and
// operators watch RSS.
func (s *Server) releaseMemory() {
	select {
	case s.release <- struct{}{}:
	default:
	}
}

// memoryReleaser serves releaseMemory.
func (s *Server) memoryReleaser() {
	for {
		select {
		case <-s.stop:
			return
		case <-s.release:
			debug.FreeOSMemory()
		}
		select {
		case <-s.stop:
			return
		case <-time.After(time.Second):
		}
	}
}

// refuse answers a connection that will not be served, then closes it.
// The deadline covers reads too: over TLS the first Write runs the
// server's side of the handshake, which reads the client's hello, and a
// client that never sends one must not hold the connection open (it is
// no longer counted against --maxclients).
func refuse(nc net.Conn, msg string) {
	nc.SetDeadline(time.Now().Add(time.Second))
	nc.Write([]byte("-" + msg + "\r\n"))
}

// serveConn serves one client connection: it reads everything the client
// has sent, serves those commands (serveBatch), writes their replies at
// once, and repeats.
func (s *Server) serveConn(nc net.Conn) {
	defer s.untrackConn(nc)
	if s.clients.Add(1) > int64(s.cfg.MaxClients) {
		s.clients.Add(-1)
		refuse(nc, msgMaxClients)
		return
	}
	defer s.clients.Add(-1)
	if s.deniedByProtectedMode(nc.RemoteAddr()) {
		refuse(nc, msgDenied)
		return
	}
	s.connsTotal.Add(1)
	c := &clientConn{
		Writer: redcon.NewWriter(nc),
		nc:     nc,
		addr:   nc.RemoteAddr().String(),
		sess:   &session{id: s.nextClientID.Add(1), authed: s.cfg.RequirePass == ""},
		stats:  s.stats,
	}
	c.ctx = withOrigin(context.Background())
	c.origin = c.ctx.Value(originKey{}).(*origin)
	rd := resp.NewCommandReader(nc, resp.CommandLimits{
		MaxBulkLen:       s.cfg.ProtoMaxBulkLen,
		QueryBufferLimit: s.cfg.ClientQueryBufferLimit,
	})
	s.registerClient(c)
	defer s.unregisterClient(c)
	defer c.flushStats() // a batch cut short by a failed write or QUIT
	defer func() {
		if rd.PeakBuffer() >= bigBuffer {
			s.releaseMemory()
		}
	}()
	var (
		batch [][][]byte
		rpc   *rpcWriter // serves a forwarding connection's RAFT.PROPOSEs
	)
	for {
		if s.cfg.Timeout > 0 {
			nc.SetReadDeadline(time.Now().Add(s.cfg.Timeout))
		}
		rd.Authenticated = c.sess.authed
		var err error
		batch, err = rd.ReadCommands(batch[:0])
		if err != nil {
			if rpc != nil {
				rpc.drain() // its replies come first, and never interleave
			}
			s.readFailed(c, err)
			return
		}
		s.cmdsTotal.Add(int64(len(batch))) // the one place commands are counted
		if s.isRPCBatch(c.sess, batch) {
			if rpc == nil {
				rpc = s.newRPCWriter(c)
				defer rpc.close()
			}
			rpc.serve(batch)
			continue
		}
		if rpc != nil {
			rpc.drain() // its replies come first
		}
		c.tick, c.fresh = time.Now(), false
		s.serveBatch(c, batch, rd)
		// Published before the replies go out, so that a client that has
		// its reply finds its new state (a name, say) in CLIENT LIST.
		c.publish(nil, rd)
		c.flushStats()
		now := c.tick // usually read as the last reply was written
		if !c.fresh {
			now = time.Now()
		}
		if c.deadline.Sub(now) < writeTimeout-writeSlack {
			c.deadline = now.Add(writeTimeout)
			nc.SetWriteDeadline(c.deadline)
		}
		if err := c.Flush(); err != nil || c.closed {
			return
		}
		if at := c.origin.answeredAt.Swap(0); at != 0 {
			s.replyLat.Record(time.Duration(monoNow() - at))
		}
	}
}

// readFailed ends a connection whose input ended or broke its protocol:
// a protocol error gets Redis's reply before the connection is closed,
// except a client over the query buffer limit, which Redis closes without
// one.
func (s *Server) readFailed(c *clientConn, err error) {
	var pe *resp.ProtocolError
	switch {
	case errors.Is(err, resp.ErrQueryBufferLimit):
		s.log.Warn("closing client that reached max query buffer length", "addr", c.addr, "id", c.sess.id)
	case errors.As(err, &pe):
		s.log.Debug("client protocol error", "addr", c.addr, "id", c.sess.id, "err", err)
		c.WriteError(errorText(pe))
		c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		c.Flush()
	}
}

// deniedByProtectedMode reports whether protected mode refuses a client
// from addr: protected mode is on, no password is set, and the client is
// not on the loopback interface.
func (s *Server) deniedByProtectedMode(addr net.Addr) bool {
	if s.cfg.NoProtectedMode || s.cfg.RequirePass != "" {
		return false
	}
	tcp, ok := addr.(*net.TCPAddr)
	return ok && !tcp.IP.IsLoopback()
}
