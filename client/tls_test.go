package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/throttledb/throttledb/client"
	"github.com/throttledb/throttledb/internal/testcerts"
	"github.com/throttledb/throttledb/internal/testcluster"
)

// TestTLS: with Options.TLSConfig the client talks to a node started with
// TLS; without it, or without a client certificate the node requires, it
// cannot.
func TestTLS(t *testing.T) {
	certs := testcerts.New(t)
	n := testcluster.StartNode(t, testcluster.Options{TLS: certs})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		o    client.Options
		ok   bool
	}{
		{"CA and client certificate", client.Options{TLSConfig: certs.ClientConfig(t, true)}, true},
		{"no client certificate", client.Options{TLSConfig: certs.ClientConfig(t, false)}, false},
		{"no TLS", client.Options{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Addrs = []string{n.Addr()}
			tc.o.ReadTimeout = 5 * time.Second
			c := newClient(t, tc.o)
			p, err := c.Acquire(ctx, "k", time.Second, 100)
			if tc.ok && (err != nil || !p.Granted) {
				t.Fatalf("Acquire: %+v, %v", p, err)
			}
			if !tc.ok && err == nil {
				t.Fatalf("Acquire succeeded: %+v", p)
			}
		})
	}
}
