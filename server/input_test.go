package server_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/internal/resp"
	"github.com/throttledb/throttledb/internal/testcerts"
	"github.com/throttledb/throttledb/internal/testcluster"
	"github.com/throttledb/throttledb/server"
)

// privateAddr gives a test node a loopback address of its own, so that
// clients of other tests running at the same time (retrying a port a
// killed node of theirs had, say) cannot reach it and be counted among its
// connections.
func privateAddr(c *server.Config) { c.Addr = "127.0.0.77:0" }

// heapInUse returns the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readReply reads one reply line from c, or "" if the connection is closed
// without one.
func readReply(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("reading reply: %v", err)
	}
	return strings.TrimRight(line, "\r\n")
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// TestHostileInput sends each input of the security review to a node with a
// password and checks that the node answers it as Redis would, closes the
// connection, keeps serving other clients while the hostile one is still
// open, changes nothing, lets the connection's goroutine end, and returns
// to its memory baseline.
func TestHostileInput(t *testing.T) {
	const pass = "s3cret"
	n := testcluster.StartNode(t, testcluster.Options{
		RequirePass: pass,
		Configure:   func(c *server.Config) { privateAddr(c); c.ClientQueryBufferLimit = 64 << 20 },
	})
	cl := redis.NewClient(&redis.Options{Addr: n.Addr(), Password: pass, MaxRetries: -1})
	defer cl.Close()
	ctx := context.Background()
	if err := cl.Set(ctx, "x", "y", 0).Err(); err == nil {
		t.Fatal("SET is not a command")
	}
	if err := cl.Do(ctx, "THROTTLE.ACQUIRE", "k", 3600000, 5).Err(); err != nil {
		t.Fatal(err)
	}
	baseline := heapInUse()
	auth := "*2\r\n$4\r\nAUTH\r\n$6\r\n" + pass + "\r\n"

	cases := []struct {
		name   string
		authed bool
		send   string
		stream int64  // bytes of filler to stream after send (until the node stops reading)
		want   string // first reply line; "" for a close without reply
	}{
		{name: "bulk length near 2^63 (26 bytes, crashed redcon)", send: "*1\r\n$9223372036854775800\r\n",
			want: "-ERR Protocol error: invalid bulk length"},
		{name: "bulk length near 2^63 authenticated", authed: true, send: "*1\r\n$9223372036854775800\r\n",
			want: "-ERR Protocol error: invalid bulk length"},
		{name: "multibulk count near 2^63 (22 bytes, spun redcon)", send: "*9223372036854775807\r\n",
			want: "-ERR Protocol error: invalid multibulk length"},
		{name: "multibulk count INT_MAX authenticated, then gone", authed: true, send: "*2147483647\r\n$1\r\na\r\n"},
		{name: "unauthenticated multibulk", send: "*11\r\n",
			want: "-ERR Protocol error: unauthenticated multibulk length"},
		{name: "unauthenticated bulk", send: "*2\r\n$4\r\nAUTH\r\n$16385\r\n",
			want: "-ERR Protocol error: unauthenticated bulk length"},
		{name: "bulk header of 2e9 then 300 MiB", send: "*1\r\n$2000000000\r\n", stream: 300 << 20,
			want: "-ERR Protocol error: invalid bulk length"},
		{name: "inline 200 KB", send: strings.Repeat("a ", 100<<10) + "\r\n",
			want: "-ERR Protocol error: too big inline request"},
		{name: "inline 600 KB authenticated", authed: true, send: strings.Repeat("a ", 300<<10) + "\r\n",
			want: "-ERR Protocol error: too big inline request"},
		{name: "mbulk count string without end", send: "*" + strings.Repeat("1", 70<<10),
			want: "-ERR Protocol error: too big mbulk count string"},
		{name: "argument over the query buffer limit", authed: true, send: "*2\r\n$4\r\nECHO\r\n$100000000\r\n"},
		{name: "50 MiB of a 500 MB argument, then gone", authed: true, send: "*2\r\n$4\r\nECHO\r\n$50000000\r\n", stream: 50 << 20},
		{name: "binary noise", send: "\x00\x01\x02\xff\r\n", want: "-ERR unknown command '\x00\x01\x02\xff', with args beginning with: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := server.Clients(n.Server)
			c, err := net.Dial("tcp", n.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			if tc.authed {
				c.Write([]byte(auth))
				if got := readReply(t, c); got != "+OK" {
					t.Fatalf("AUTH: %q", got)
				}
			}
			c.Write([]byte(tc.send))
			streamed := make(chan struct{})
			go func() {
				defer close(streamed)
				chunk := bytes.Repeat([]byte("z"), 1<<20)
				for sent := int64(0); sent < tc.stream; sent += int64(len(chunk)) {
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}()
			// Other clients are served while the hostile one is open.
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if v, err := cl.Ping(pctx).Result(); err != nil || v != "PONG" {
				t.Fatalf("PING from another connection: %v %v", v, err)
			}
			if tc.want != "" {
				if got := readReply(t, c); got != tc.want {
					t.Fatalf("reply %q, want %q", got, tc.want)
				}
			}
			<-streamed
			c.Close()
			waitFor(t, "the connection to be released", func() bool { return server.Clients(n.Server) <= before })
			waitFor(t, "the heap to return to its baseline", func() bool { return heapInUse() < baseline+32<<20 })
			if v, err := cl.DBSize(ctx).Result(); err != nil || v != 1 {
				t.Fatalf("DBSIZE %v %v: state changed", v, err)
			}
		})
	}
}

// TestRefusedSilentTLSClientIsClosed: with TLS, a connection over
// --maxclients that never starts its handshake is still closed, rather than
// held open (a goroutine and a descriptor each, beyond --maxclients) while
// the refusal waits for a ClientHello that never comes.
func TestRefusedSilentTLSClientIsClosed(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{
		TLS:       testcerts.New(t),
		Configure: func(c *server.Config) { c.MaxClients = 1; c.TLSAuthClients = "no" },
	})
	// A silent connection takes the one slot (a connection counts from
	// accept, before its handshake) ...
	first, err := net.Dial("tcp", n.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	waitFor(t, "the first connection to be counted", func() bool { return server.Clients(n.Server) == 1 })
	// ... so the next silent ones are refused, and each must be closed.
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", n.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err = io.Copy(io.Discard, c) // until the server closes it
		c.Close()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("refused connection %d still open after 30 s", i)
		}
	}
}

// TestMaxClients: a connection over --maxclients gets Redis's error and is
// closed; once a client leaves, a new one is served.
func TestMaxClients(t *testing.T) {
	const max = 3
	n := testcluster.StartNode(t, testcluster.Options{Configure: func(c *server.Config) { privateAddr(c); c.MaxClients = max }})
	// Open connections until one is refused. A connection the test does not
	// own (none is expected) would take a slot too, so the promise checked
	// is: at most max are served, and the next gets Redis's error.
	var served []net.Conn
	defer func() {
		for _, c := range served {
			c.Close()
		}
	}()
	refused := false
	for i := 0; i < max+5 && !refused; i++ {
		c, err := net.Dial("tcp", n.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("PING\r\n"))
		switch got := readReply(t, c); got {
		case "+PONG":
			served = append(served, c)
		case "-ERR max number of clients reached":
			refused = true
			c.Close()
		default:
			t.Fatalf("client %d: %q", i, got)
		}
	}
	if !refused || len(served) == 0 || len(served) > max {
		t.Fatalf("%d clients served before a refusal (refused: %v), want 1 to %d (the node counts %d)",
			len(served), refused, max, server.Clients(n.Server))
	}
	if len(served) < max {
		t.Logf("%d clients served before a refusal: %d other connections were open", len(served), max-len(served))
	}
	served[0].Close()
	served = served[1:]
	waitFor(t, "a client slot", func() bool {
		c, err := net.Dial("tcp", n.Addr())
		if err != nil {
			return false
		}
		defer c.Close()
		c.Write([]byte("PING\r\n"))
		return readReply(t, c) == "+PONG"
	})
}

// TestIdleTimeout: with --timeout, an idle client is closed; a busy one is
// not closed while it waits for a reply.
func TestIdleTimeout(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{Configure: func(c *server.Config) { privateAddr(c); c.Timeout = 200 * time.Millisecond }})
	c, err := net.Dial("tcp", n.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("PING\r\n"))
	if got := readReply(t, c); got != "+PONG" {
		t.Fatalf("PING: %q", got)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("idle connection got data instead of being closed")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("idle connection was not closed")
	}
}

// addrConn gives a connection a remote address loopback tests cannot have.
type addrConn struct {
	net.Conn
	remote net.Addr
}

func (a addrConn) RemoteAddr() net.Addr { return a.remote }

// TestProtectedMode: without a password, protected mode refuses clients
// that are not on the loopback interface with Redis's DENIED error, and
// serves loopback clients; a password or --protected-mode no lifts it.
func TestProtectedMode(t *testing.T) {
	remote := &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 5555}
	local := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5555}
	tests := []struct {
		name string
		opts testcluster.Options
		from net.Addr
		want string
	}{
		{"remote, no password", testcluster.Options{}, remote, "-DENIED throttledb is running in protected mode"},
		{"loopback, no password", testcluster.Options{}, local, "+PONG"},
		{"remote, password", testcluster.Options{RequirePass: "pw"}, remote, "-NOAUTH"},
		{"remote, protected mode off", testcluster.Options{Configure: func(c *server.Config) { c.NoProtectedMode = true }}, remote, "+PONG"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := testcluster.StartNode(t, tc.opts)
			cli, srv := net.Pipe()
			defer cli.Close()
			done := make(chan struct{})
			go func() { defer close(done); server.ServeConn(n.Server, addrConn{srv, tc.from}) }()
			cli.SetDeadline(time.Now().Add(30 * time.Second))
			go cli.Write([]byte("PING\r\n"))
			if got := readReply(t, cli); !strings.HasPrefix(got, tc.want) {
				t.Fatalf("reply %q, want %q...", got, tc.want)
			}
			cli.Close()
			<-done
		})
	}
}

// FuzzServe feeds arbitrary bytes to a real node's connection handler,
// with and without a password, and checks that every reply is well-formed
// RESP and that the node still answers PING on another connection.
func FuzzServe(f *testing.F) {
	open := testcluster.StartNode(f, testcluster.Options{ID: "open"})
	locked := testcluster.StartNode(f, testcluster.Options{ID: "locked", RequirePass: "pw"})
	for _, seed := range []string{
		"PING\r\n",
		"*3\r\n$16\r\nTHROTTLE.ACQUIRE\r\n$1\r\nk\r\n$4\r\n1000\r\n",
		"THROTTLE.ACQUIRE k 1000 5\r\nTHROTTLE.PEEK k 1000 5\r\nMULTI\r\nTHROTTLE.ACQUIRE k 1000 5\r\nEXEC\r\n",
		"AUTH pw\r\nTHROTTLE.ACQUIRE k 1000 5\r\n",
		"HELLO 3 AUTH default pw\r\nCONFIG GET *\r\nCOMMAND DOCS\r\n",
		"*1\r\n$9223372036854775800\r\n",
		"*9223372036854775807\r\n",
		"*11\r\n",
		"*2\r\n$4\r\nAUTH\r\n$16385\r\n",
		"ECHO \"a\\x41\\\" 'b'\r\n",
		"*2\r\n$8\r\nRAFT.FWD\r\n$8\r\nRAFT.FWD\r\n",
		"\x00\xff\r\n*",
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, in []byte, withPassword bool) {
		n := open
		if withPassword {
			n = locked
		}
		c, err := net.Dial("tcp", n.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		go func() {
			c.Write(in)
			c.(*net.TCPConn).CloseWrite()
		}()
		r := bufio.NewReader(c)
		for {
			if _, err := resp.ReadReply(r); err != nil {
				if errors.Is(err, io.EOF) || isReset(err) {
					break
				}
				t.Fatalf("reply after %q: %v", in, err)
			}
		}
		p, err := net.Dial("tcp", n.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		p.SetDeadline(time.Now().Add(30 * time.Second))
		p.Write([]byte("PING\r\n"))
		if got := readReply(t, p); got != "+PONG" && got != "-NOAUTH Authentication required." {
			t.Fatalf("PING after %q: %q", in, got)
		}
	})
}
