package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
)

var (
	// ErrTLSConfig is returned by Start and Server.ReloadTLS when the TLS
	// settings or files are unusable (missing, unreadable, malformed, or a
	// certificate that the CA does not sign). A failed reload keeps the
	// certificates in use.
	ErrTLSConfig = errors.New("invalid TLS configuration")
	// ErrTLSNotConfigured is returned by Server.ReloadTLS on a node started
	// without TLS: there is nothing to reload.
	ErrTLSNotConfigured = errors.New("TLS is not configured")
	// ErrProtectedMode is returned by Start when protected mode forbids the
	// configuration: a Raft address that is not loopback without cluster
	// TLS.
	ErrProtectedMode = errors.New("protected mode")
)

// Values of Config.TLSAuthClients, as Redis spells tls-auth-clients.
const (
	TLSAuthClientsYes      = "yes"      // clients must present a certificate the CA signed (default)
	TLSAuthClientsOptional = "optional" // a certificate is verified if presented
	TLSAuthClientsNo       = "no"       // no client certificate is asked for
)

// tlsMaterial is one loaded generation of the node's certificate and CA.
// It is immutable: a reload swaps in a new one.
type tlsMaterial struct {
	cert  *tls.Certificate
	roots *x509.CertPool
}

// tlsManager holds the node's TLS material and builds the tls.Configs of
// its listeners and dialers. Every config reads the current material when a
// connection starts, so after a reload new connections use the new
// certificates while established ones carry on.
type tlsManager struct {
	certFile, keyFile, caFile string
	authClients               tls.ClientAuthType
	cur                       atomic.Pointer[tlsMaterial]
}

// newTLSManager loads the TLS files named in cfg. It returns nil (and no
// error) when none is set: the node then speaks plain TCP everywhere.
func newTLSManager(cfg Config) (*tlsManager, error) {
	if cfg.TLSCertFile == "" && cfg.TLSKeyFile == "" && cfg.TLSCACertFile == "" {
		if cfg.TLSAuthClients != "" && cfg.TLSAuthClients != TLSAuthClientsYes {
			return nil, fmt.Errorf("%w: --tls-auth-clients needs --tls-cert-file, --tls-key-file and --tls-ca-cert-file", ErrTLSConfig)
		}
		return nil, nil
	}
	if cfg.TLSCertFile == "" || cfg.TLSKeyFile == "" || cfg.TLSCACertFile == "" {
		// The CA is not optional: nodes verify each other against it.
		return nil, fmt.Errorf("%w: --tls-cert-file, --tls-key-file and --tls-ca-cert-file must be set together", ErrTLSConfig)
	}
	m := &tlsManager{certFile: cfg.TLSCertFile, keyFile: cfg.TLSKeyFile, caFile: cfg.TLSCACertFile}
	switch cfg.TLSAuthClients {
	case "", TLSAuthClientsYes:
		m.authClients = tls.RequireAndVerifyClientCert
	case TLSAuthClientsOptional:
		m.authClients = tls.VerifyClientCertIfGiven
	case TLSAuthClientsNo:
		m.authClients = tls.NoClientCert
	default:
		return nil, fmt.Errorf("%w: --tls-auth-clients must be yes, no or optional, not %q", ErrTLSConfig, cfg.TLSAuthClients)
	}
	if err := m.reload(); err != nil {
		return nil, err
	}
	return m, nil
}

// reload reads the certificate, key and CA files again and, if they are
// usable, makes them current. On an error the current material stays.
func (m *tlsManager) reload() error {
	mat, err := loadTLSMaterial(m.certFile, m.keyFile, m.caFile)
	if err != nil {
		return err
	}
	m.cur.Store(mat)
	return nil
}

// loadTLSMaterial loads a certificate and key and a CA bundle, and checks
// that the CA signs the certificate for both server and client use: a node
// presents it when it accepts connections and when it dials its peers, and
// the peers verify it against the same CA. Catching a mismatch here gives a
// clear error at start (or reload) instead of a cluster that cannot form.
func loadTLSMaterial(certFile, keyFile, caFile string) (*tlsMaterial, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: load %s and %s: %w", ErrTLSConfig, certFile, keyFile, err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("%w: read CA: %w", ErrTLSConfig, err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrTLSConfig, caFile)
	}
	leaf := cert.Leaf // parsed by LoadX509KeyPair since Go 1.23
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%w: parse %s: %w", ErrTLSConfig, certFile, err)
		}
		cert.Leaf = leaf
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	for _, use := range []struct {
		usage x509.ExtKeyUsage
		name  string
	}{{x509.ExtKeyUsageServerAuth, "serverAuth"}, {x509.ExtKeyUsageClientAuth, "clientAuth"}} {
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{use.usage}})
		if err != nil {
			return nil, fmt.Errorf("%w: %s is not valid for %s under the CA in %s (a node certificate needs both serverAuth and clientAuth): %w",
				ErrTLSConfig, certFile, use.name, caFile, err)
		}
	}
	return &tlsMaterial{cert: &cert, roots: roots}, nil
}

// respServerConfig is the RESP port's config: the node's certificate, and
// client certificates asked for and verified as --tls-auth-clients says.
func (m *tlsManager) respServerConfig() *tls.Config {
	return m.serverConfig(m.authClients, false)
}

// nodeServerConfig is the Raft port's config: the dialing node must present
// a certificate the CA signed, whatever --tls-auth-clients says. Session
// resumption is off so that every connection is verified against the
// current CA.
func (m *tlsManager) nodeServerConfig() *tls.Config {
	return m.serverConfig(tls.RequireAndVerifyClientCert, true)
}

// serverConfig is a listener's config, built per connection from the
// current material so that a reload applies to the next handshake.
func (m *tlsManager) serverConfig(auth tls.ClientAuthType, noResumption bool) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			mat := m.cur.Load()
			return &tls.Config{
				MinVersion:             tls.VersionTLS12,
				Certificates:           []tls.Certificate{*mat.cert},
				ClientCAs:              mat.roots,
				ClientAuth:             auth,
				SessionTicketsDisabled: noResumption,
			}, nil
		},
	}
}

// nodeClientConfig is the config a node dials a peer with (Raft and RESP):
// it presents the node's certificate and verifies the peer's against the CA
// and the dialed host name or IP. It is built per connection from the
// current material (Go's client side has no per-connection hook for the
// roots), so a reload applies to the next dial.
func (m *tlsManager) nodeClientConfig() *tls.Config {
	mat := m.cur.Load()
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{*mat.cert},
		RootCAs:      mat.roots,
	}
}

// ReloadTLS reads the TLS certificate, key and CA files again; connections
// made afterwards, on every port and to every peer, use them. On an error
// (wrapping ErrTLSConfig) the node keeps the certificates it had. main wires
// it to SIGHUP.
func (s *Server) ReloadTLS() error {
	if s.tls == nil {
		return ErrTLSNotConfigured
	}
	if err := s.tls.reload(); err != nil {
		s.log.Error("TLS reload failed; keeping the certificates in use", "err", err)
		return err
	}
	s.log.Info("TLS certificates reloaded", "cert", s.tls.certFile, "ca", s.tls.caFile)
	return nil
}

// checkProtectedRaft refuses, in protected mode, a Raft transport reachable
// beyond this host without cluster TLS: hashicorp/raft's transport would
// otherwise accept log entries, votes and elections from anyone who can
// reach the port. bound is the listener's address, advertise the address
// peers dial.
func checkProtectedRaft(cfg Config, tlsOn bool, bound net.Addr, advertise string) error {
	if cfg.NoProtectedMode || tlsOn {
		return nil
	}
	exposed := ""
	if tcp, ok := bound.(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		exposed = bound.String()
	} else if host, _, err := net.SplitHostPort(advertise); err != nil || !isLoopbackHost(host) {
		exposed = advertise
	}
	if exposed == "" {
		return nil
	}
	return fmt.Errorf("%w: the Raft address %s is not a loopback address and cluster TLS is not configured, "+
		"so anyone who can reach it could append to the cluster's log, vote and force elections. "+
		"Set --tls-cert-file, --tls-key-file and --tls-ca-cert-file (see cluster.md, Security), "+
		"or start with --protected-mode no to accept the risk", ErrProtectedMode, exposed)
}

// isLoopbackHost reports whether host is a loopback IP or "localhost".
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
