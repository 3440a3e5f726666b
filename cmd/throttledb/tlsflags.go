package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
)

// errTLSFlags is returned for client TLS flags that do not fit together or
// files that cannot be used.
var errTLSFlags = errors.New("bad TLS settings")

// clientTLSFlags are the TLS flags of the tools that connect to a cluster
// (backup, restore, bench, simulate), named as redis-cli names them.
type clientTLSFlags struct {
	enabled           bool
	cacert, cert, key string
}

func (f *clientTLSFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.enabled, "tls", false, "connect with TLS (nodes started with --tls-cert-file)")
	fs.StringVar(&f.cacert, "cacert", "", "CA certificate (PEM) to verify the nodes with (with --tls)")
	fs.StringVar(&f.cert, "cert", "", "client certificate (PEM), for nodes with --tls-auth-clients yes (with --tls)")
	fs.StringVar(&f.key, "key", "", "private key of --cert (PEM)")
}

// config returns the TLS configuration the flags ask for, or nil without
// --tls.
func (f *clientTLSFlags) config() (*tls.Config, error) {
	if !f.enabled {
		if f.cacert != "" || f.cert != "" || f.key != "" {
			return nil, fmt.Errorf("%w: --cacert, --cert and --key need --tls", errTLSFlags)
		}
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.cacert != "" {
		pem, err := os.ReadFile(f.cacert)
		if err != nil {
			return nil, fmt.Errorf("%w: --cacert: %w", errTLSFlags, err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: --cacert %s holds no PEM certificate", errTLSFlags, f.cacert)
		}
	}
	if (f.cert == "") != (f.key == "") {
		return nil, fmt.Errorf("%w: --cert and --key go together", errTLSFlags)
	}
	if f.cert != "" {
		pair, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, fmt.Errorf("%w: --cert/--key: %w", errTLSFlags, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
