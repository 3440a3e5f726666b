package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/throttledb/throttledb/fsm"
	"github.com/throttledb/throttledb/internal/testcerts"
)

// closeDeadline is how long a test waits for Server.Close before it calls
// the close hung. With a stalled peer and no fix, Close waits for raft's
// RPC deadline (minutes for the snapshots below) or for ever.
const closeDeadline = 60 * time.Second

// TestStreamLayerCloseConns checks, for every way Raft connections are
// secured, that closeConns ends blocked reads on both dialed and accepted
// connections, that the layer then refuses new connections both ways, and
// that connections closed normally leave its set.
func TestStreamLayerCloseConns(t *testing.T) {
	certs := testcerts.New(t)
	tlsm, err := newTLSManager(Config{TLSCertFile: certs.NodeCert, TLSKeyFile: certs.NodeKey, TLSCACertFile: certs.CA})
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("correct horse battery staple")
	for _, tc := range []struct {
		name string
		sec  nodeSecurity
	}{
		{"no security", nodeSecurity{}},
		{"secret", nodeSecurity{secret: secret}},
		{"TLS", nodeSecurity{tls: tlsm}},
		{"TLS and secret", nodeSecurity{tls: tlsm, secret: secret}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			layer := &tcpStreamLayer{ln: ln, advertise: ln.Addr(), sec: tc.sec}
			t.Cleanup(func() { layer.Close() })
			// Each accepted connection is read until it fails, as raft's
			// handleConn does, and closed; the first Read runs the
			// listener's handshake.
			acceptedDone := make(chan error, 4)
			serveEach(layer, acceptedDone, func(conn net.Conn) error {
				_, err := io.Copy(io.Discard, conn)
				return err
			})
			addr := raft.ServerAddress(ln.Addr().String())

			// A connection closed normally leaves the set.
			conn, err := layer.Dial(addr, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			conn.Close()
			waitErr(t, "the accepted end of a closed connection", acceptedDone)
			waitUntil(t, "a closed connection to leave the set", func() bool { return layer.openConns() == 0 })

			// A dialed connection whose peer never writes, so that its
			// Read blocks; its accepted end blocks reading likewise.
			conn, err = layer.Dial(addr, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			dialedDone := make(chan error, 1)
			go func() {
				_, err := conn.Read(make([]byte, 1))
				dialedDone <- err
			}()
			waitUntil(t, "both ends to be tracked", func() bool { return layer.openConns() == 2 })

			layer.closeConns()
			waitErr(t, "the blocked Read on the dialed connection", dialedDone)
			waitErr(t, "the blocked Read on the accepted connection", acceptedDone)
			conn.Close()
			waitUntil(t, "closed connections to leave the set", func() bool { return layer.openConns() == 0 })

			if c, err := layer.Dial(addr, 10*time.Second); !errors.Is(err, net.ErrClosed) {
				if c != nil {
					c.Close()
				}
				t.Fatalf("Dial after closeConns: %v, want net.ErrClosed", err)
			}
			// An inbound connection now is closed at once by the layer
			// (the listener stays open until raft's transport closes it).
			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			raw.SetReadDeadline(time.Now().Add(closeDeadline))
			if _, err := raw.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Fatalf("read on a connection accepted after closeConns: %v, want EOF", err)
			}
			if n := layer.openConns(); n != 0 {
				t.Fatalf("%d connections tracked after closeConns", n)
			}
		})
	}
}

// waitErr waits for a result on ch, failing the test after closeDeadline.
func waitErr(t *testing.T, what string, ch <-chan error) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(closeDeadline):
		t.Fatalf("%s did not return", what)
	}
}

// closeReturns closes s and fails the test if Close has not returned
// within closeDeadline; unstall then ends the stall, so that the hung
// Close can finish before the test's data directory is removed.
func closeReturns(t *testing.T, s *Server, unstall func()) {
	t.Helper()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		s.Close()
	}()
	select {
	case <-closed:
	case <-time.After(closeDeadline):
		unstall()
		<-closed
		t.Fatalf("Close did not return within %v with a stalled peer", closeDeadline)
	}
}

// startTestNode starts a single-node server on loopback ports in a temp
// directory and waits until it serves.
func startTestNode(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Addr, cfg.RaftAddr, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.NoSync = true
	s, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the node to serve", s.isReady)
	return s
}

// smallBufferLayer is a plain raft stream layer whose accepted connections
// have a small receive buffer, so that a peer that stops reading stalls
// the sender within a few kilobytes rather than after the megabytes the
// kernel would otherwise buffer on loopback.
type smallBufferLayer struct{ net.Listener }

func (l smallBufferLayer) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err == nil {
		conn.(*net.TCPConn).SetReadBuffer(4096)
	}
	return conn, err
}

func (l smallBufferLayer) Dial(a raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(a), timeout)
}

// TestCloseWithPeerStalledInSnapshot: the leader sends a snapshot of a few
// megabytes to a non-voter that takes the RPC's header and then stops
// reading while its connection stays up. raft's deadline for that send is
// 10 s per 256 KiB (minutes here), and Raft.Shutdown waits for the
// sending goroutine; Close must return anyway.
func TestCloseWithPeerStalledInSnapshot(t *testing.T) {
	// TrailingLogs 1: after the snapshot below the log no longer holds the
	// entries the new peer lacks, so the leader must send the snapshot.
	s := startTestNode(t, Config{LogStore: LogStoreBolt, TrailingLogs: 1, SnapshotThreshold: 1 << 30})
	// About 4.8 MB of keys: a deadline of some three minutes.
	key := strings.Repeat("k", 4000)
	for b := 0; b < 12; b++ {
		var cmds []fsm.Command
		for i := 0; i < 100; i++ {
			cmds = append(cmds, fsm.Acquire{Key: fmt.Sprintf("%s%d-%d", key, b, i), Interval: 3600000, Max: 10, Slop: 1000})
		}
		if _, err := s.prop.proposeAll(context.Background(), cmds...); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peer := raft.NewNetworkTransport(smallBufferLayer{ln}, 3, 10*time.Second, io.Discard)
	// Closing the peer's transport makes its handler waiting for our
	// answer to the snapshot give up and close the connection.
	var stopPeer sync.Once
	unstall := func() { stopPeer.Do(func() { peer.Close() }) }
	t.Cleanup(unstall)
	snapshotArrived := make(chan struct{})
	go func() {
		var once sync.Once
		for rpc := range peer.Consumer() {
			switch cmd := rpc.Command.(type) {
			case *raft.AppendEntriesRequest:
				if len(cmd.Entries) == 0 && cmd.PrevLogEntry == 0 {
					// A heartbeat.
					rpc.Respond(&raft.AppendEntriesResponse{Term: cmd.Term, Success: true}, nil)
				} else {
					// An empty log: the leader backs off to index 1,
					// which only the snapshot holds.
					rpc.Respond(&raft.AppendEntriesResponse{Term: cmd.Term, LastLog: 0, NoRetryBackoff: true}, nil)
				}
			case *raft.InstallSnapshotRequest:
				// Stall: never read rpc.Reader, never answer.
				once.Do(func() { close(snapshotArrived) })
			default:
				rpc.Respond(nil, errors.New("not served by the stalled peer"))
			}
		}
	}()
	if err := s.raft.Raft.AddNonvoter("stalled", raft.ServerAddress(ln.Addr().String()), 0, 0).Error(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-snapshotArrived:
	case <-time.After(closeDeadline):
		t.Fatal("the leader sent no snapshot to the new peer")
	}
	closeReturns(t, s, unstall)
}

// stallReader blocks every Read until release is closed, then fails.
type stallReader struct{ release <-chan struct{} }

func (r stallReader) Read([]byte) (int, error) {
	<-r.release
	return 0, io.ErrUnexpectedEOF
}

// TestCloseWithLeaderStalledInSnapshot: a node receives a snapshot from a
// leader of a newer term that sends the RPC's header and then nothing,
// while its connection stays up. raft reads the snapshot on its main loop
// with no deadline on the accepted connection, and Raft.Shutdown waits for
// that loop; Close must return anyway.
func TestCloseWithLeaderStalledInSnapshot(t *testing.T) {
	s := startTestNode(t, Config{})
	leader, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, 10*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	sent := make(chan error, 1)
	var unstallOnce sync.Once
	unstall := func() {
		unstallOnce.Do(func() {
			close(release)
			<-sent
			leader.Close()
		})
	}
	t.Cleanup(unstall)

	const term = 1000
	addr := leader.LocalAddr()
	req := &raft.InstallSnapshotRequest{
		RPCHeader:          raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("stalled"), Addr: []byte(addr)},
		SnapshotVersion:    raft.SnapshotVersionMax,
		Term:               term,
		Leader:             []byte(addr),
		LastLogIndex:       1 << 20,
		LastLogTerm:        term,
		Configuration:      raft.EncodeConfiguration(raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: "stalled", Address: addr}}}),
		ConfigurationIndex: 1 << 20,
		Size:               1 << 30,
	}
	go func() {
		var resp raft.InstallSnapshotResponse
		sent <- leader.InstallSnapshot(raft.ServerID(s.cfg.ID), raft.ServerAddress(s.RaftAddr()), req, &resp, stallReader{release})
	}()
	// raft creates the snapshot (a .tmp directory) just before it reads
	// the snapshot's data.
	snaps := filepath.Join(s.cfg.DataDir, snapshotsDir)
	waitUntil(t, "the node to start receiving the stalled leader's snapshot", func() bool { return partialSnapshots(t, snaps) == 1 })
	closeReturns(t, s, unstall)
	// The failed transfer is cancelled, not installed.
	if n := partialSnapshots(t, snaps); n != 0 {
		t.Fatalf("%d partial snapshots left in %s after Close", n, snaps)
	}
}

// partialSnapshots counts the snapshots being written in dir, a raft
// FileSnapshotStore's directory.
func partialSnapshots(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			n++
		}
	}
	return n
}
