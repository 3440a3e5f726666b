package server_test

import (
	"bufio"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
)

// rawConn is a RESP connection written by hand, so that a test can send
// commands no client library would build.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

// do sends one command as a RESP array and returns the first line of the
// reply (the whole reply for a simple string, error or integer).
func (r *rawConn) do(args ...string) string {
	r.t.Helper()
	var b strings.Builder
	b.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n")
	}
	r.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := r.c.Write([]byte(b.String())); err != nil {
		r.t.Fatal(err)
	}
	line, err := r.br.ReadString('\n')
	if err != nil {
		r.t.Fatalf("reading the reply: %v", err)
	}
	return strings.TrimRight(line, "\r\n")
}

// TestInternalCommandsDoNotNest sends internal commands nested inside each
// other, 100,000 levels deep in one command (4.5 million nested RAFT.FWD
// once overflowed the stack and killed the node): each is refused with an
// error, without recursion, and the node answers PING afterwards, on the
// same connection and a new one.
func TestInternalCommandsDoNotNest(t *testing.T) {
	const pass = "nest-secret"
	n := testcluster.StartNode(t, testcluster.Options{RequirePass: pass})
	testcluster.WaitFor(t, 10*time.Second, "leader", n.Server.IsLeader)
	conn := dialRaw(t, n.Addr())
	if got := conn.do("AUTH", pass); got != "+OK" {
		t.Fatalf("AUTH: %q", got)
	}
	nested := func(levels int, wrapper []string, inner ...string) []string {
		var args []string
		for i := 0; i < levels; i++ {
			args = append(args, wrapper...)
		}
		return append(args, inner...)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"RAFT.FWD once is served", nested(1, []string{"RAFT.FWD"}, "PING"), "+PONG"},
		{"RAFT.FWD twice", nested(2, []string{"RAFT.FWD"}, "PING"), "-ERR RAFT.FWD cannot be nested"},
		{"RAFT.FWD 100k deep", nested(100_000, []string{"RAFT.FWD"}, "PING"), "-ERR RAFT.FWD cannot be nested"},
		{"mixed case", nested(100_000, []string{"raft.fwd", "Raft.Fwd"}, "PING"), "-ERR RAFT.FWD cannot be nested"},
		// RAFT.PROPOSE carries fsm-encoded commands, never commands to
		// dispatch: nothing inside it can nest.
		{"RAFT.PROPOSE of garbage inside RAFT.FWD", nested(1, []string{"RAFT.FWD"}, "RAFT.PROPOSE", "RAFT.FWD"), "-ERR malformed forwarding RPC: version 82"},
		{"RAFT.FWD around RAFT.FWD around RAFT.PROPOSE", nested(100_000, []string{"RAFT.FWD"}, "RAFT.PROPOSE", "x"), "-ERR RAFT.FWD cannot be nested"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := conn.do(tc.args...); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if got := conn.do("PING"); got != "+PONG" {
				t.Fatalf("PING on the same connection: %q", got)
			}
		})
	}
	other := dialRaw(t, n.Addr())
	if got := other.do("AUTH", pass); got != "+OK" {
		t.Fatalf("AUTH on a new connection: %q", got)
	}
	if got := other.do("PING"); got != "+PONG" {
		t.Fatalf("PING on a new connection: %q", got)
	}
}
