package client_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/throttledb/throttledb/client"
	"github.com/tidwall/redcon"
)

// tryAgainServer answers every THROTTLE.ACQUIRE with TRYAGAIN (a node that
// cannot tell whether a write was applied) and records each one's ID
// token; anything else (the client's connection set-up) gets an error, as
// from an old server.
func tryAgainServer(t *testing.T) (addr string, ids func() []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	go redcon.Serve(ln, func(conn redcon.Conn, cmd redcon.Command) {
		if !strings.EqualFold(string(cmd.Args[0]), "THROTTLE.ACQUIRE") {
			conn.WriteError("ERR unknown command")
			return
		}
		id := ""
		for i := 1; i+1 < len(cmd.Args); i++ {
			if strings.EqualFold(string(cmd.Args[i]), "ID") {
				id = string(cmd.Args[i+1])
			}
		}
		mu.Lock()
		seen = append(seen, id)
		mu.Unlock()
		conn.WriteError("TRYAGAIN outcome unknown")
	}, nil, nil)
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// TestWaitStopsResendingAfterTokenRetryLimit: Wait resends a call whose
// outcome is unknown with its token, but not so late that the server may
// have forgotten the token (it remembers one for a minute): then it
// returns ErrOutcomeUnknown instead of risking a second slot. Each retry
// here comes ten (fake) seconds after the one before.
func TestWaitStopsResendingAfterTokenRetryLimit(t *testing.T) {
	addr, ids := tryAgainServer(t)
	c := newClient(t, client.Options{Addrs: []string{addr}})
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	client.SetNow(c, func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	})
	sleeps := 0
	client.SetSleep(c, func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(10 * time.Second)
		if sleeps++; sleeps > 20 {
			return context.Canceled // resending for ever: fail, not hang
		}
		return nil
	})
	_, err := c.Wait(context.Background(), "k", time.Second, 1)
	if !errors.Is(err, client.ErrOutcomeUnknown) {
		t.Fatalf("Wait = %v, want ErrOutcomeUnknown", err)
	}
	got := ids()
	// Sent at 0, 10, 20, 30 and 40 s; at 50 s the limit (45 s) has passed.
	if want := int(client.TokenRetryLimit/(10*time.Second)) + 1; len(got) != want {
		t.Fatalf("%d attempts, want %d", len(got), want)
	}
	for i, id := range got {
		if id == "" || id != got[0] {
			t.Fatalf("attempt %d carried token %q, the first %q: every resend must carry the first's", i, id, got[0])
		}
	}
}
