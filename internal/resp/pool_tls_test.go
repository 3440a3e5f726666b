package resp

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/throttledb/throttledb/internal/testcerts"
)

// TestPoolUsernameAndTLS: a pool with a Username sends AUTH user password,
// and with TLS dials TLS, presenting its certificate and verifying the
// server's against the CA and the dialed host.
func TestPoolUsernameAndTLS(t *testing.T) {
	certs := testcerts.New(t)
	other := testcerts.New(t)
	serverCert, err := tls.LoadX509KeyPair(certs.NodeCert, certs.NodeKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := certs.ClientConfig(t, false).RootCAs
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{serverCert}, ClientCAs: roots, ClientAuth: tls.RequireAndVerifyClientCert,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := newFakeServerOn(t, ln, "s3cret")
	for _, tc := range []struct {
		name      string
		cfg       PoolConfig
		errSubstr string // "" means PONG
		wantErr   error
	}{
		{name: "user and TLS", cfg: PoolConfig{Username: "node", Password: "s3cret", TLS: func() *tls.Config { return certs.ClientConfig(t, true) }}},
		{name: "wrong user", cfg: PoolConfig{Username: "other", Password: "s3cret", TLS: func() *tls.Config { return certs.ClientConfig(t, true) }},
			errSubstr: "WRONGPASS", wantErr: ErrAuth},
		{name: "no TLS", cfg: PoolConfig{Username: "node", Password: "s3cret"}, errSubstr: "read"},
		{name: "no client certificate", cfg: PoolConfig{Password: "s3cret", TLS: func() *tls.Config { return certs.ClientConfig(t, false) }}, errSubstr: "certificate"},
		{name: "server not under the trusted CA", cfg: PoolConfig{Password: "s3cret", TLS: func() *tls.Config { return other.ClientConfig(t, true) }}, errSubstr: "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Addr = srv.addr()
			p := NewPool(tc.cfg)
			defer p.Close()
			reply, err := p.Do(context.Background(), cmd("PING")...)
			if tc.errSubstr == "" {
				if err != nil || string(reply) != "+PONG\r\n" {
					t.Fatalf("Do = %q, %v", reply, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errSubstr) || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("Do = %q, %v; want an error mentioning %q (%v)", reply, err, tc.errSubstr, tc.wantErr)
			}
		})
	}
}
