package server

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcerts"
)

func TestNewTLSManagerRejectsBadSettings(t *testing.T) {
	certs := testcerts.New(t)
	other := testcerts.New(t) // a second, unrelated CA
	dir := t.TempDir()
	serverOnlyCert, serverOnlyKey := certs.Issue(t, dir, "server-only", x509.ExtKeyUsageServerAuth)
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate"), 0o600)
	for _, tc := range []struct {
		name           string
		cert, key, ca  string
		authClients    string
		wantNil        bool   // no TLS at all
		wantErrContain string // "" means no error
	}{
		{name: "none", wantNil: true},
		{name: "none, auth-clients yes (the flag's default)", authClients: "yes", wantNil: true},
		{name: "none, auth-clients optional", authClients: "optional", wantErrContain: "--tls-auth-clients needs"},
		{name: "good", cert: certs.NodeCert, key: certs.NodeKey, ca: certs.CA},
		{name: "good, auth-clients no", cert: certs.NodeCert, key: certs.NodeKey, ca: certs.CA, authClients: "no"},
		{name: "cert without CA", cert: certs.NodeCert, key: certs.NodeKey, wantErrContain: "must be set together"},
		{name: "CA alone", ca: certs.CA, wantErrContain: "must be set together"},
		{name: "bad auth-clients", cert: certs.NodeCert, key: certs.NodeKey, ca: certs.CA, authClients: "maybe", wantErrContain: "yes, no or optional"},
		{name: "missing cert file", cert: filepath.Join(dir, "nope.crt"), key: certs.NodeKey, ca: certs.CA, wantErrContain: "nope.crt"},
		{name: "key of another cert", cert: certs.NodeCert, key: certs.ClientKey, ca: certs.CA, wantErrContain: "load"},
		{name: "garbage CA", cert: certs.NodeCert, key: certs.NodeKey, ca: garbage, wantErrContain: "no PEM certificate"},
		{name: "cert of another CA", cert: certs.NodeCert, key: certs.NodeKey, ca: other.CA, wantErrContain: "serverAuth"},
		{name: "cert without clientAuth", cert: serverOnlyCert, key: serverOnlyKey, ca: certs.CA, wantErrContain: "clientAuth"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := newTLSManager(Config{TLSCertFile: tc.cert, TLSKeyFile: tc.key, TLSCACertFile: tc.ca, TLSAuthClients: tc.authClients})
			if tc.wantErrContain != "" {
				if !errors.Is(err, ErrTLSConfig) || !strings.Contains(err.Error(), tc.wantErrContain) {
					t.Fatalf("err = %v; want ErrTLSConfig mentioning %q", err, tc.wantErrContain)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (m == nil) != tc.wantNil {
				t.Fatalf("manager = %v, want nil: %v", m, tc.wantNil)
			}
		})
	}
}

// serialOf dials addr with TLS and returns the serial number of the
// certificate the server presents.
func serialOf(t *testing.T, addr string, cfg *tls.Config) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// TestTLSReload: a reload makes new connections use the new certificate;
// a failed reload returns the error and keeps the certificate in use.
func TestTLSReload(t *testing.T) {
	certs := testcerts.New(t)
	m, err := newTLSManager(Config{TLSCertFile: certs.NodeCert, TLSKeyFile: certs.NodeKey, TLSCACertFile: certs.CA, TLSAuthClients: "no"})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{tls: m, log: slog.New(slog.DiscardHandler)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln := tls.NewListener(ln, m.respServerConfig())
	defer tln.Close()
	go func() {
		for {
			c, err := tln.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	client := certs.ClientConfig(t, false)
	first := serialOf(t, ln.Addr().String(), client)

	// New files under the same names, as a certificate rotation does.
	certs.Issue(t, filepath.Dir(certs.NodeCert), "node", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	if err := s.ReloadTLS(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	second := serialOf(t, ln.Addr().String(), client)
	if second == first {
		t.Fatalf("after reload the server still presents serial %s", first)
	}

	os.WriteFile(certs.NodeCert, []byte("truncated"), 0o600)
	if err := s.ReloadTLS(); !errors.Is(err, ErrTLSConfig) {
		t.Fatalf("reload of a broken file: %v, want ErrTLSConfig", err)
	}
	if got := serialOf(t, ln.Addr().String(), client); got != second {
		t.Fatalf("after a failed reload the server presents serial %s, want the previous %s", got, second)
	}

	if err := (&Server{}).ReloadTLS(); !errors.Is(err, ErrTLSNotConfigured) {
		t.Fatalf("reload without TLS: %v", err)
	}
}

// streamPair starts a stream layer with sec on a loopback port that serves
// every accepted connection in its own goroutine, as raft's transport
// does: it echoes what it reads, and reports the first error of each
// connection on errs.
func streamPair(t *testing.T, sec nodeSecurity) (layer *tcpStreamLayer, errs chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	layer = &tcpStreamLayer{ln: ln, advertise: ln.Addr(), sec: sec}
	errs = make(chan error, 16)
	t.Cleanup(func() { layer.Close() })
	serveEach(layer, errs, func(conn net.Conn) error {
		_, err := io.Copy(conn, conn)
		return err
	})
	return layer, errs
}

// echoes reports whether conn echoes a message back.
func echoes(t *testing.T, conn net.Conn) bool {
	t.Helper()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	// Longer than the handshake's hello, so a listener expecting one sees
	// it is not one at once.
	msg := bytes.Repeat([]byte("raft bytes "), 8)
	if _, err := conn.Write(msg); err != nil {
		return false
	}
	got := make([]byte, len(msg))
	_, err := io.ReadFull(conn, got)
	return err == nil && bytes.Equal(got, msg)
}

func TestNodeHandshake(t *testing.T) {
	certs := testcerts.New(t)
	other := testcerts.New(t)
	mgr := func(c *testcerts.Certs) *tlsManager {
		m, err := newTLSManager(Config{TLSCertFile: c.NodeCert, TLSKeyFile: c.NodeKey, TLSCACertFile: c.CA})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	good, foreign := mgr(certs), mgr(other)
	secret, wrong := []byte("correct horse battery staple"), []byte("correct horse battery stapler")
	for _, tc := range []struct {
		name             string
		listener, dialer nodeSecurity
		ok               bool
	}{
		{"no security", nodeSecurity{}, nodeSecurity{}, true},
		{"good secret", nodeSecurity{secret: secret}, nodeSecurity{secret: secret}, true},
		{"wrong secret", nodeSecurity{secret: secret}, nodeSecurity{secret: wrong}, false},
		{"dialer without secret", nodeSecurity{secret: secret}, nodeSecurity{}, false},
		{"TLS", nodeSecurity{tls: good}, nodeSecurity{tls: good}, true},
		{"TLS and secret", nodeSecurity{tls: good, secret: secret}, nodeSecurity{tls: good, secret: secret}, true},
		{"TLS, wrong secret", nodeSecurity{tls: good, secret: secret}, nodeSecurity{tls: good, secret: wrong}, false},
		{"dialer without TLS", nodeSecurity{tls: good}, nodeSecurity{}, false},
		{"dialer without TLS, with secret", nodeSecurity{tls: good, secret: secret}, nodeSecurity{secret: secret}, false},
		{"dialer with another CA's certificate", nodeSecurity{tls: good}, nodeSecurity{tls: foreign}, false},
		{"listener with another CA's certificate", nodeSecurity{tls: foreign}, nodeSecurity{tls: good}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			layer, errs := streamPair(t, tc.listener)
			conn, err := tc.dialer.dial(layer.Addr().String(), 10*time.Second)
			if tc.ok {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				defer conn.Close()
				if !echoes(t, conn) {
					t.Fatal("no echo through a good handshake")
				}
				return
			}
			if err == nil {
				// A dialer that does not check (no TLS, no secret) only
				// learns when the listener closes on it.
				if echoes(t, conn) {
					t.Fatal("bytes passed a failed handshake")
				}
				conn.Close()
			} else if tc.dialer.enabled() && !errors.Is(err, ErrNodeHandshake) {
				t.Fatalf("dial error %v does not wrap ErrNodeHandshake", err)
			}
			if err := <-errs; !errors.Is(err, ErrNodeHandshake) {
				t.Fatalf("listener side: %v, want ErrNodeHandshake", err)
			}
		})
	}
}

// TestNodeHandshakeRefusesGarbage: raw bytes that are not the handshake
// (a RESP command, raft's own msgpack, the magic with a made-up proof)
// never reach the listener's reader.
func TestNodeHandshakeRefusesGarbage(t *testing.T) {
	secret := []byte("s3cret")
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"RESP", []byte("*1\r\n$4\r\nPING\r\n")},
		{"raft AppendEntries header", append([]byte{0x00, 0x8a}, bytes.Repeat([]byte{0xa5}, 200)...)},
		{"magic, nonce and a zero proof", append([]byte(handshakeMagic), make([]byte, handshakeNonce+sha256.Size)...)},
		{"magic only, then EOF", []byte(handshakeMagic)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			layer, errs := streamPair(t, nodeSecurity{secret: secret})
			conn, err := net.Dial("tcp", layer.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			conn.Write(tc.data)
			conn.(*net.TCPConn).CloseWrite()
			if err := <-errs; !errors.Is(err, ErrNodeHandshake) {
				t.Fatalf("listener side: %v, want ErrNodeHandshake", err)
			}
			conn.Close()
		})
	}
}

// TestSlowDialerDoesNotBlockAccept: a peer that connects and says nothing
// does not stop another peer from connecting and talking, and its own
// handshake still completes when it finally speaks. If Accept ran the
// handshake, the second peer would wait for the first one's handshake
// timeout, which would by then have closed the first.
func TestSlowDialerDoesNotBlockAccept(t *testing.T) {
	certs := testcerts.New(t)
	m, err := newTLSManager(Config{TLSCertFile: certs.NodeCert, TLSKeyFile: certs.NodeKey, TLSCACertFile: certs.CA})
	if err != nil {
		t.Fatal(err)
	}
	sec := nodeSecurity{tls: m, secret: []byte("s3cret")}
	layer, _ := streamPair(t, sec)
	addr := layer.Addr().String()

	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	for i := range 3 {
		conn, err := sec.dial(addr, 10*time.Second)
		if err != nil {
			t.Fatalf("dial %d while a peer stalls: %v", i, err)
		}
		if !echoes(t, conn) {
			t.Fatalf("peer %d: no echo while a peer stalls", i)
		}
		conn.Close()
	}
	secured, err := sec.handshake(slow, time.Now().Add(10*time.Second), addr)
	if err != nil {
		t.Fatalf("the slow peer's handshake: %v", err)
	}
	if !echoes(t, secured) {
		t.Fatal("the slow peer: no echo")
	}
}

func TestCheckProtectedRaft(t *testing.T) {
	loop := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7380}
	wild := &net.TCPAddr{IP: net.IPv4zero, Port: 7380}
	lan := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 7380}
	for _, tc := range []struct {
		name      string
		cfg       Config
		tls       bool
		bound     net.Addr
		advertise string
		refused   bool
	}{
		{"loopback", Config{}, false, loop, "127.0.0.1:7380", false},
		{"localhost advertised", Config{}, false, loop, "localhost:7380", false},
		{"IPv6 loopback", Config{}, false, &net.TCPAddr{IP: net.IPv6loopback, Port: 1}, "[::1]:1", false},
		{"LAN address", Config{}, false, lan, "10.0.0.5:7380", true},
		{"wildcard bind", Config{}, false, wild, "10.0.0.5:7380", true},
		{"loopback bind, LAN advertise", Config{}, false, loop, "10.0.0.5:7380", true},
		{"loopback bind, host name advertised", Config{}, false, loop, "node1.internal:7380", true},
		{"LAN with TLS", Config{}, true, lan, "10.0.0.5:7380", false},
		{"LAN, protected mode off", Config{NoProtectedMode: true}, false, lan, "10.0.0.5:7380", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkProtectedRaft(tc.cfg, tc.tls, tc.bound, tc.advertise)
			if !tc.refused {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrProtectedMode) || !strings.Contains(err.Error(), "--protected-mode no") || !strings.Contains(err.Error(), "TLS") {
				t.Fatalf("err = %v; want ErrProtectedMode naming TLS and --protected-mode no", err)
			}
		})
	}
}

// FuzzAcceptHandshake feeds arbitrary bytes to the listener's side of the
// cluster-secret handshake: it must never accept them (nobody can forge a
// proof of the secret for a nonce chosen after the bytes) and never panic.
func FuzzAcceptHandshake(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte(handshakeMagic))
	f.Add([]byte("*1\r\n$4\r\nPING\r\n"))
	f.Add(append([]byte(handshakeMagic), make([]byte, handshakeNonce+sha256.Size)...))
	f.Add(append([]byte("TDB\x02"), make([]byte, handshakeNonce+sha256.Size)...))
	f.Add(bytes.Repeat([]byte{0xff}, 4096))
	secret := []byte("fuzz secret")
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b := net.Pipe()
		defer a.Close()
		go io.Copy(io.Discard, b) // whatever the listener answers
		go func() {
			// After data the dialer hangs up, so a handshake waiting for
			// more bytes ends at once.
			b.Write(data)
			b.Close()
		}()
		a.SetDeadline(time.Now().Add(5 * time.Second))
		if err := acceptHandshake(a, secret); err == nil {
			t.Fatalf("handshake accepted %x", data)
		}
	})
}

// serveEach serves every connection layer accepts with serve, each in its
// own goroutine (as raft's transport does), closes it afterwards and
// reports serve's error on errs, until the layer is closed.
func serveEach(layer *tcpStreamLayer, errs chan<- error, serve func(net.Conn) error) {
	go func() {
		for {
			conn, err := layer.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				errs <- serve(conn)
			}()
		}
	}()
}
