package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/throttledb/throttledb/internal/resp"
)

// ErrNodeHandshake is the error of a Raft connection whose peer failed the
// node handshake: no certificate from the cluster's CA, or no proof of the
// cluster secret. The connection is closed before any Raft message is read
// from it or written to it.
var ErrNodeHandshake = errors.New("node handshake failed")

// NodeUser is the user name nodes AUTH with on each other's RESP ports when
// a cluster secret is set: `AUTH throttledb-node <cluster secret>`. Such a
// session is a node session, the only kind allowed to run the internal
// commands RAFT.FWD, RAFT.PROPOSE and RAFT.JOIN.
const NodeUser = "throttledb-node"

// The cluster-secret handshake on the Raft port. The dialer proves it knows
// the secret first, so the listener, the side anyone can reach, never
// reveals anything derived from the secret to a peer that has not proven
// it:
//
//	dialer   -> listener: magic (4 bytes) | dialer nonce (32)
//	listener -> dialer:   listener nonce (32)
//	dialer   -> listener: HMAC-SHA256(secret, "throttledb raft dialer"   | nonces) (32)
//	listener -> dialer:   HMAC-SHA256(secret, "throttledb raft listener" | nonces) (32)
//
// Fresh nonces on both sides defeat replay; the direction labels stop a
// proof from being reflected back to the side that made it.
const (
	handshakeMagic   = "TDB\x01"
	handshakeNonce   = 32
	handshakeTimeout = 10 * time.Second // listener side; the dialer uses raft's dial timeout
	labelDialer      = "throttledb raft dialer"
	labelListener    = "throttledb raft listener"
)

// handshakeMAC proves knowledge of secret for one direction of one
// connection.
func handshakeMAC(secret []byte, label string, dialerNonce, listenerNonce []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(label))
	h.Write(dialerNonce)
	h.Write(listenerNonce)
	return h.Sum(nil)
}

// dialHandshake runs the dialer's side of the handshake on conn.
func dialHandshake(conn net.Conn, secret []byte) error {
	hello := make([]byte, len(handshakeMagic)+handshakeNonce)
	copy(hello, handshakeMagic)
	dn := hello[len(handshakeMagic):]
	rand.Read(dn)
	if _, err := conn.Write(hello); err != nil {
		return err
	}
	ln := make([]byte, handshakeNonce)
	if _, err := io.ReadFull(conn, ln); err != nil {
		return fmt.Errorf("reading the listener's nonce: %w", err)
	}
	if _, err := conn.Write(handshakeMAC(secret, labelDialer, dn, ln)); err != nil {
		return err
	}
	// The listener closes the connection on a wrong proof.
	return readProof(conn, handshakeMAC(secret, labelListener, dn, ln), "the peer refused this node's cluster secret")
}

// readProof reads the peer's proof that it knows the secret and checks it
// against want; readFailed says what a failed read means.
func readProof(conn net.Conn, want []byte, readFailed string) error {
	proof := make([]byte, sha256.Size)
	if _, err := io.ReadFull(conn, proof); err != nil {
		return fmt.Errorf("%s: %w", readFailed, err)
	}
	if !hmac.Equal(proof, want) {
		return errors.New("the peer does not know the cluster secret")
	}
	return nil
}

// acceptHandshake runs the listener's side of the handshake on conn.
func acceptHandshake(conn net.Conn, secret []byte) error {
	hello := make([]byte, len(handshakeMagic)+handshakeNonce)
	if _, err := io.ReadFull(conn, hello); err != nil {
		return fmt.Errorf("reading the hello: %w", err)
	}
	if subtle.ConstantTimeCompare(hello[:len(handshakeMagic)], []byte(handshakeMagic)) != 1 {
		return errors.New("the peer did not start the handshake (is its --cluster-secret set?)")
	}
	dn := hello[len(handshakeMagic):]
	ln := make([]byte, handshakeNonce)
	rand.Read(ln)
	if _, err := conn.Write(ln); err != nil {
		return err
	}
	if err := readProof(conn, handshakeMAC(secret, labelDialer, dn, ln), "reading the proof"); err != nil {
		return err
	}
	_, err := conn.Write(handshakeMAC(secret, labelListener, dn, ln))
	return err
}

// nodeSecurity is what the Raft stream layer checks on every connection:
// mutual TLS against the CA (tls non-nil) and the cluster-secret handshake
// (secret non-empty), TLS first, so the handshake runs encrypted.
type nodeSecurity struct {
	tls    *tlsManager
	secret []byte
}

func (sec nodeSecurity) enabled() bool { return sec.tls != nil || len(sec.secret) > 0 }

// dial opens a connection to address and completes both checks within
// timeout. It returns the connection to use (a *tls.Conn with TLS).
func (sec nodeSecurity) dial(address string, timeout time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(timeout)
	conn, err := net.DialTimeout("tcp", address, timeout)
	if err != nil || !sec.enabled() {
		return conn, err
	}
	secured, err := sec.handshake(conn, deadline, address)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: with %s: %w", ErrNodeHandshake, address, err)
	}
	return secured, nil
}

// handshake runs TLS (when configured) and then the secret handshake (when
// a secret is set) on conn before deadline, as the dialer when dialAddr is
// set and as the listener otherwise. It returns the connection to use.
func (sec nodeSecurity) handshake(conn net.Conn, deadline time.Time, dialAddr string) (net.Conn, error) {
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	if sec.tls != nil {
		var tc *tls.Conn
		if dialAddr != "" {
			cfg := sec.tls.nodeClientConfig()
			// The peer's certificate must name the address dialed (an IP
			// SAN for an IP address).
			cfg.ServerName, _, _ = net.SplitHostPort(dialAddr)
			tc = tls.Client(conn, cfg)
		} else {
			tc = tls.Server(conn, sec.tls.nodeServerConfig())
		}
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("TLS: %w", err)
		}
		conn = tc
	}
	if len(sec.secret) > 0 {
		hs := acceptHandshake
		if dialAddr != "" {
			hs = dialHandshake
		}
		if err := hs(conn, sec.secret); err != nil {
			return nil, fmt.Errorf("cluster secret: %w", err)
		}
	}
	return conn, conn.SetDeadline(time.Time{})
}

// acceptedConn is an accepted Raft connection whose handshake runs on its
// first Read or Write, in raft's per-connection goroutine: raft's Accept
// loop hands the connection over at once, so a peer that connects and then
// stalls (or never speaks) holds only its own goroutine, for at most
// handshakeTimeout, and never delays other peers' connections.
type acceptedConn struct {
	net.Conn // the raw TCP connection: addresses, deadlines, Close
	sec      nodeSecurity

	once    sync.Once
	secured net.Conn // after a successful handshake
	err     error
}

func (c *acceptedConn) handshake() error {
	c.once.Do(func() {
		c.secured, c.err = c.sec.handshake(c.Conn, time.Now().Add(handshakeTimeout), "")
		if c.err != nil {
			c.err = fmt.Errorf("%w: from %s: %w", ErrNodeHandshake, c.Conn.RemoteAddr(), c.err)
			c.Conn.Close()
		}
	})
	return c.err
}

// Read reads from the secured connection, after the handshake.
func (c *acceptedConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.secured.Read(p)
}

// Write writes to the secured connection, after the handshake.
func (c *acceptedConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.secured.Write(p)
}

// nodePoolConfig is how this node's RESP connections to its peers (for
// forwarding and joining) authenticate: as NodeUser with the cluster secret
// when one is set, otherwise with the client password as before; and over
// mutual TLS when TLS is configured.
func nodePoolConfig(cfg Config, tlsm *tlsManager) resp.PoolConfig {
	pc := resp.PoolConfig{Password: cfg.RequirePass, DialTimeout: time.Second}
	if cfg.ClusterSecret != "" {
		pc.Username, pc.Password = NodeUser, cfg.ClusterSecret
	}
	if tlsm != nil {
		pc.TLS = tlsm.nodeClientConfig
	}
	return pc
}

// authenticate checks AUTH's (or HELLO AUTH's) user and password and, if
// they are right, marks sess authenticated: as a node session when they
// are NodeUser and the cluster secret. It reports whether they were right.
func (s *Server) authenticate(sess *session, user string, pass []byte) bool {
	if user == NodeUser && s.cfg.ClusterSecret != "" {
		// Digests, so the comparison's time says nothing about the length.
		got, want := sha256.Sum256(pass), sha256.Sum256([]byte(s.cfg.ClusterSecret))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return false
		}
		sess.authed, sess.node = true, true
		return true
	}
	if !s.checkPassword(user, pass) {
		return false
	}
	// AUTH switches user, as in Redis: a node session that authenticates
	// as the default user is no longer a node session.
	sess.authed, sess.node = true, false
	return true
}

// nodeOnly refuses the internal command name with Redis's NOPERM error
// unless sess may run it: always without a cluster secret (nodes then AUTH
// with the client password, as clients do), and only in a node session
// with one.
func (s *Server) nodeOnly(sess *session, name string) error {
	if s.cfg.ClusterSecret == "" || sess.node {
		return nil
	}
	return redisError("NOPERM User default has no permissions to run the '" + name + "' command")
}
