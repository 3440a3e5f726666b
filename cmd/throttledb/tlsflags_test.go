package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/throttledb/throttledb/client"
	"github.com/throttledb/throttledb/internal/testcerts"
	"github.com/throttledb/throttledb/internal/testcluster"
)

func TestClientTLSFlags(t *testing.T) {
	certs := testcerts.New(t)
	notPEM := filepath.Join(t.TempDir(), "x.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	tests := []struct {
		name    string
		f       clientTLSFlags
		wantNil bool
		wantErr bool
	}{
		{name: "off", wantNil: true},
		{name: "on, system CAs", f: clientTLSFlags{enabled: true}},
		{name: "CA and client certificate", f: clientTLSFlags{enabled: true, cacert: certs.CA, cert: certs.ClientCert, key: certs.ClientKey}},
		{name: "files without --tls", f: clientTLSFlags{cacert: certs.CA}, wantErr: true},
		{name: "cert without key", f: clientTLSFlags{enabled: true, cert: certs.ClientCert}, wantErr: true},
		{name: "missing CA file", f: clientTLSFlags{enabled: true, cacert: "/nonexistent/ca.pem"}, wantErr: true},
		{name: "CA file without a certificate", f: clientTLSFlags{enabled: true, cacert: notPEM}, wantErr: true},
		{name: "key of another certificate", f: clientTLSFlags{enabled: true, cert: certs.ClientCert, key: certs.NodeKey}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.f.config()
			if tc.wantErr {
				if !errors.Is(err, errTLSFlags) {
					t.Fatalf("err = %v, want errTLSFlags", err)
				}
				return
			}
			if err != nil || (cfg == nil) != tc.wantNil {
				t.Fatalf("config %v, err %v", cfg, err)
			}
		})
	}
}

// TestBackupOverTLS: the tools reach a node that speaks TLS only, with
// redis-cli's flags.
func TestBackupOverTLS(t *testing.T) {
	certs := testcerts.New(t)
	n := testcluster.StartNode(t, testcluster.Options{TLS: certs})
	tls := []string{"--addr", n.Addr(), "--tls", "--cacert", certs.CA, "--cert", certs.ClientCert, "--key", certs.ClientKey}
	file := filepath.Join(t.TempDir(), "b.backup")
	if err := runBackup(append([]string{"--file", file}, tls...)); err != nil {
		t.Fatalf("backup over TLS: %v", err)
	}
	if err := runBackup([]string{"--addr", n.Addr(), "--file", file, "--timeout", "2s"}); err == nil {
		t.Fatal("backup without TLS reached a TLS-only node")
	}
	cfg, err := (&clientTLSFlags{enabled: true, cacert: certs.CA, cert: certs.ClientCert, key: certs.ClientKey}).config()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Options{Addrs: []string{n.Addr()}, TLSConfig: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Acquire(ctx, "k", time.Second, 1); err != nil {
		t.Fatalf("acquire with the flags' TLS config: %v", err)
	}
}
