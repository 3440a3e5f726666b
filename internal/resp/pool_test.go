package resp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const wrongPass = "-WRONGPASS invalid username-password pair or user is disabled.\r\n"

// fakeServer is a tiny RESP server on loopback. Commands:
//
//	AUTH pw  -> +OK or -WRONGPASS (when a password is configured)
//	PING     -> +PONG
//	ECHO x   -> $len x
//	ERR      -> -ERR boom
//	SLOW     -> signals slow, waits until the test ends, then +LATE
//	GARBAGE  -> a malformed reply
//	DOUBLE   -> two replies in one write
//	HANGUP   -> closes the connection without replying
type fakeServer struct {
	ln       net.Listener
	password string
	accepts  atomic.Int32
	slow     chan struct{} // receives one value per SLOW command
	done     chan struct{} // closed at cleanup

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func newFakeServer(t *testing.T, password string) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return newFakeServerOn(t, ln, password)
}

// newFakeServerOn is newFakeServer on a listener of the caller's (TLS).
func newFakeServerOn(t *testing.T, ln net.Listener, password string) *fakeServer {
	s := &fakeServer{
		ln: ln, password: password,
		slow:  make(chan struct{}, 16),
		done:  make(chan struct{}),
		conns: make(map[net.Conn]struct{}),
	}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() {
		close(s.done)
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

func (s *fakeServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.accepts.Add(1)
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.handle(c)
	}
}

func (s *fakeServer) handle(c net.Conn) {
	defer s.wg.Done()
	defer c.Close()
	br := bufio.NewReader(c)
	authed := s.password == ""
	for {
		raw, err := ReadReply(br)
		if err != nil {
			return
		}
		args, err := parseCommand(raw)
		if err != nil || len(args) == 0 {
			return
		}
		var reply string
		switch cmd := strings.ToUpper(args[0]); {
		case cmd == "AUTH":
			// AUTH pw, or AUTH node pw: the one user name the fake knows.
			if s.password != "" && args[len(args)-1] == s.password && (len(args) == 2 || len(args) == 3 && args[1] == "node") {
				authed, reply = true, "+OK\r\n"
			} else {
				reply = wrongPass
			}
		case !authed:
			reply = "-NOAUTH Authentication required.\r\n"
		case cmd == "PING":
			reply = "+PONG\r\n"
		case cmd == "ECHO" && len(args) == 2:
			reply = string(AppendCommandStrings(nil, args[1])[4:]) // strip "*1\r\n"
		case cmd == "ERR":
			reply = "-ERR boom\r\n"
		case cmd == "SLOW":
			s.slow <- struct{}{}
			<-s.done
			reply = "+LATE\r\n"
		case cmd == "GARBAGE":
			reply = "?what\r\n"
		case cmd == "DOUBLE":
			reply = "+ONE\r\n+TWO\r\n"
		case cmd == "HANGUP":
			return
		default:
			reply = "-ERR unknown command '" + args[0] + "'\r\n"
		}
		if _, err := c.Write([]byte(reply)); err != nil {
			return
		}
	}
}

func cmd(args ...string) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = []byte(a)
	}
	return out
}

func do(t *testing.T, p *Pool, args ...string) string {
	t.Helper()
	reply, err := p.Do(context.Background(), cmd(args...)...)
	if err != nil {
		t.Fatalf("Do(%q): %v", args, err)
	}
	return string(reply)
}

func TestPoolReplies(t *testing.T) {
	srv := newFakeServer(t, "")
	p := NewPool(PoolConfig{Addr: srv.addr()})
	defer p.Close()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"PING"}, "+PONG\r\n"},
		{[]string{"ECHO", "hello\r\nworld"}, "$12\r\nhello\r\nworld\r\n"},
		{[]string{"ERR"}, "-ERR boom\r\n"},
		{[]string{"NOPE"}, "-ERR unknown command 'NOPE'\r\n"},
		{[]string{"PING"}, "+PONG\r\n"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			if got := do(t, p, tc.args...); got != tc.want {
				t.Fatalf("Do = %q, want %q", got, tc.want)
			}
		})
	}
	// Error replies are not connection failures: everything used one conn.
	if n := srv.accepts.Load(); n != 1 {
		t.Fatalf("accepts = %d, want 1", n)
	}
}

func TestPoolReuse(t *testing.T) {
	srv := newFakeServer(t, "")
	p := NewPool(PoolConfig{Addr: srv.addr()})
	defer p.Close()
	for range 20 {
		if got := do(t, p, "PING"); got != "+PONG\r\n" {
			t.Fatalf("Do = %q", got)
		}
	}
	if n := srv.accepts.Load(); n != 1 {
		t.Fatalf("accepts = %d, want 1", n)
	}
}

func TestPoolConcurrent(t *testing.T) {
	const workers = 16
	for _, maxIdle := range []int{3, workers} {
		t.Run(fmt.Sprint("maxIdle=", maxIdle), func(t *testing.T) {
			srv := newFakeServer(t, "")
			p := NewPool(PoolConfig{Addr: srv.addr(), MaxIdle: maxIdle})
			defer p.Close()
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for range workers {
				wg.Go(func() {
					for range 50 {
						reply, err := p.Do(context.Background(), cmd("PING")...)
						if err != nil || string(reply) != "+PONG\r\n" {
							errs <- errors.Join(err, errors.New(string(reply)))
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			p.mu.Lock()
			idle := len(p.idle)
			p.mu.Unlock()
			if idle > maxIdle {
				t.Fatalf("idle = %d, want <= %d", idle, maxIdle)
			}
			// With room for every worker's connection nothing is discarded,
			// so no more than one connection per worker is ever dialed.
			if n := srv.accepts.Load(); maxIdle >= workers && n > workers {
				t.Fatalf("accepts = %d, want <= %d", n, workers)
			}
		})
	}
}

func TestPoolAuth(t *testing.T) {
	srv := newFakeServer(t, "s3cret")
	tests := []struct {
		name      string
		password  string
		want      string
		wantErr   error
		errSubstr string
	}{
		{name: "correct password", password: "s3cret", want: "+PONG\r\n"},
		{name: "wrong password", password: "nope", wantErr: ErrAuth, errSubstr: "WRONGPASS"},
		{name: "no password", password: "", want: "-NOAUTH Authentication required.\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPool(PoolConfig{Addr: srv.addr(), Password: tc.password})
			defer p.Close()
			for range 2 { // the second call reuses the authenticated conn
				reply, err := p.Do(context.Background(), cmd("PING")...)
				if tc.wantErr != nil {
					if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.errSubstr) {
						t.Fatalf("Do = %q, %v; want %v", reply, err, tc.wantErr)
					}
					continue
				}
				if err != nil || string(reply) != tc.want {
					t.Fatalf("Do = %q, %v; want %q", reply, err, tc.want)
				}
			}
		})
	}
}

func TestPoolDeadline(t *testing.T) {
	srv := newFakeServer(t, "")
	p := NewPool(PoolConfig{Addr: srv.addr()})
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	reply, err := p.Do(ctx, cmd("SLOW")...)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Do = %q, %v; want context.DeadlineExceeded", reply, err)
	}
	// The timed-out connection must not be reused.
	if got := do(t, p, "PING"); got != "+PONG\r\n" {
		t.Fatalf("Do = %q", got)
	}
	if n := srv.accepts.Load(); n != 2 {
		t.Fatalf("accepts = %d, want 2", n)
	}
}

func TestPoolCancel(t *testing.T) {
	srv := newFakeServer(t, "")
	p := NewPool(PoolConfig{Addr: srv.addr()})
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-srv.slow
		cancel()
	}()
	reply, err := p.Do(ctx, cmd("SLOW")...)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Do = %q, %v; want context.Canceled", reply, err)
	}
	// An already cancelled context fails before touching the network.
	if _, err := p.Do(ctx, cmd("PING")...); !errors.Is(err, context.Canceled) {
		t.Fatalf("Do with cancelled ctx: %v", err)
	}
	if got := do(t, p, "PING"); got != "+PONG\r\n" {
		t.Fatalf("Do = %q", got)
	}
	if n := srv.accepts.Load(); n != 2 {
		t.Fatalf("accepts = %d, want 2", n)
	}
}

func TestPoolBrokenConnections(t *testing.T) {
	tests := []struct {
		name    string
		cmd     string
		want    string // expected reply, if no error
		wantErr error  // expected error, or nil for any non-nil error
	}{
		{name: "malformed reply", cmd: "GARBAGE", wantErr: ErrProtocol},
		{name: "peer hangs up", cmd: "HANGUP"},
		{name: "extra reply", cmd: "DOUBLE", want: "+ONE\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFakeServer(t, "")
			p := NewPool(PoolConfig{Addr: srv.addr()})
			defer p.Close()
			reply, err := p.Do(context.Background(), cmd(tc.cmd)...)
			switch {
			case tc.want != "":
				if err != nil || string(reply) != tc.want {
					t.Fatalf("Do = %q, %v; want %q", reply, err, tc.want)
				}
			case err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)):
				t.Fatalf("Do = %q, %v; want error %v", reply, err, tc.wantErr)
			}
			// The broken connection was discarded: a new one is dialed and
			// no stale data is read.
			if got := do(t, p, "PING"); got != "+PONG\r\n" {
				t.Fatalf("Do = %q", got)
			}
			if n := srv.accepts.Load(); n != 2 {
				t.Fatalf("accepts = %d, want 2", n)
			}
		})
	}
}

func TestPoolDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := NewPool(PoolConfig{Addr: addr})
	defer p.Close()
	if _, err := p.Do(context.Background(), cmd("PING")...); err == nil || errors.Is(err, ErrPoolClosed) {
		t.Fatalf("Do to closed port: %v", err)
	}
}

func TestPoolEmptyCommand(t *testing.T) {
	p := NewPool(PoolConfig{Addr: "127.0.0.1:1"})
	if _, err := p.Do(context.Background()); err == nil {
		t.Fatal("Do without args succeeded")
	}
}

func TestPoolClose(t *testing.T) {
	srv := newFakeServer(t, "")
	p := NewPool(PoolConfig{Addr: srv.addr()})
	do(t, p, "PING")
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := p.Do(context.Background(), cmd("PING")...); !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("Do after Close: %v, want ErrPoolClosed", err)
	}
	if p.Addr() != srv.addr() {
		t.Fatalf("Addr = %q, want %q", p.Addr(), srv.addr())
	}
}

func TestPoolDefaults(t *testing.T) {
	p := NewPool(PoolConfig{Addr: "x:1"})
	if p.cfg.MaxIdle != 8 || p.cfg.DialTimeout != time.Second {
		t.Fatalf("defaults: MaxIdle=%d DialTimeout=%v", p.cfg.MaxIdle, p.cfg.DialTimeout)
	}
}

func TestPools(t *testing.T) {
	a := newFakeServer(t, "pw")
	b := newFakeServer(t, "pw")
	ps := NewPools("pw", 0)
	pa, pb := ps.Get(a.addr()), ps.Get(b.addr())
	if pa == pb || ps.Get(a.addr()) != pa {
		t.Fatal("Get must return one pool per address")
	}
	if pa.Addr() != a.addr() || pb.Addr() != b.addr() {
		t.Fatal("pool addresses do not match")
	}
	do(t, pa, "PING")
	do(t, pb, "PING")
	ps.Close()
	ps.Close()
	for _, p := range []*Pool{pa, pb, ps.Get(a.addr()), ps.Get("127.0.0.1:1")} {
		if _, err := p.Do(context.Background(), cmd("PING")...); !errors.Is(err, ErrPoolClosed) {
			t.Fatalf("Do on %s after Pools.Close: %v", p.Addr(), err)
		}
	}
}

func TestPoolPipeline(t *testing.T) {
	srv := newFakeServer(t, "pw")
	p := NewPool(PoolConfig{Addr: srv.addr(), Password: "pw"})
	defer p.Close()
	ctx := context.Background()

	replies, err := p.DoPipeline(ctx, cmd("PING"), cmd("ECHO", "a"), cmd("ERR"), cmd("PING"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"+PONG\r\n", "$1\r\na\r\n", "-ERR boom\r\n", "+PONG\r\n"}
	for i := range want {
		if i >= len(replies) || string(replies[i]) != want[i] {
			t.Fatalf("replies %q, want %q", replies, want)
		}
	}
	// The connection went back to the pool: one dial so far.
	if got := do(t, p, "PING"); got != "+PONG\r\n" || srv.accepts.Load() != 1 {
		t.Fatalf("after a pipeline: %q, %d accepts", got, srv.accepts.Load())
	}

	// The peer hangs up mid-pipeline: the replies before it, and an error.
	replies, err = p.DoPipeline(ctx, cmd("PING"), cmd("HANGUP"), cmd("PING"))
	if err == nil || len(replies) != 1 || string(replies[0]) != "+PONG\r\n" {
		t.Fatalf("hang-up mid-pipeline: %q, %v; want one reply and an error", replies, err)
	}
	if _, err := p.DoPipeline(ctx); !errors.Is(err, errEmptyCommand) {
		t.Fatalf("no commands: %v", err)
	}
	if _, err := p.DoPipeline(ctx, cmd("PING"), nil); !errors.Is(err, errEmptyCommand) {
		t.Fatalf("an empty command: %v", err)
	}
}
